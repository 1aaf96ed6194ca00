#!/usr/bin/env bash
# Every GPU benchmark and the GPU-marked tests in one go, JSON results in one folder.
#
#   benchmarks/gpu.sh [OUT_DIR]            # on a machine with a CUDA GPU (from the repository root)
#   benchmarks/gpu.sh --dry-run [OUT_DIR]  # tiny sizes on CPU in about a minute: checks the script
#   STEPS="drr_speed xray_train_speed" benchmarks/gpu.sh [--dry-run] [OUT_DIR]   # only these steps
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3); WHEELS (a folder of
# wheels to install missing dependencies from, offline); STEPS (which steps to run, default all:
# train_speed metrics_speed inference_speed drr_speed xray_train_speed gpu_tests, always run in this
# order); DRR_CT (the LIDC CT, cxr.nii.gz, for drr_speed's real-CT case, which is skipped when
# neither it nor drr_speed's default path exists). Each step has its own time limit: train_speed
# 270 s, metrics_speed 90 s, inference_speed 60 s, GPU tests 90 s (8.5 minutes together), drr_speed
# 90 s, xray_train_speed 120 s (3.5 minutes more). Where one command may run 10 minutes at most,
# run STEPS="train_speed metrics_speed inference_speed gpu_tests" in one call and
# STEPS="drr_speed xray_train_speed" in another. A step that fails or times out is recorded in
# summary.json and the others still run.
# Output: OUT_DIR/{environment.json, <step>.json for each step run, gpu_tests.json, summary.json} and
# one .log per step (default OUT_DIR: benchmarks/results/gpu-<UTC time>).
set -uo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
all_steps="train_speed metrics_speed inference_speed drr_speed xray_train_speed gpu_tests"
steps="${STEPS:-$all_steps}"
for name in $steps; do
  [[ " $all_steps " == *" $name "* ]] || { echo "STEPS: unknown step '$name'; expected some of: $all_steps" >&2; exit 2; }
done
wanted() { [[ " $steps " == *" $1 "* ]]; }
out="${1:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}"
if [[ -n "${PYTHON:-}" ]]; then py="$PYTHON"; elif [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ $dry_run == 1 ]]; then
  train_args=(--tiny --device cpu --steps 1 --warmup 0 --mlflow-steps 20)
  metrics_args=(--repeats 1 --warmup 0)
  inference_args=(--device cpu --shape 32 32 16 --roi 16 16 16 --num-downs 2 --ngf 4)
  drr_args=(--device cpu --tiny --repeats 1)
  xray_args=(--device cpu --tiny --steps 1 --warmup 0 --items 1)
  train_limit=600 metrics_limit=600 test_timeout=600 inference_limit=600  # a busy CPU; the 8-minute budget is for the GPU run
  drr_limit=600 xray_limit=600
else
  if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to $py: use --dry-run to check the script on CPU" >&2
    exit 2
  fi
  train_args=(--device cuda --batch 64 --compile)
  metrics_args=(--repeats 7)
  inference_args=(--device cuda --shape 512 512 300)
  drr_args=(--device cuda --repeats 5)
  xray_args=(--device cuda)
  train_limit=270 metrics_limit=90 test_timeout=90 inference_limit=60
  drr_limit=90 xray_limit=120
fi
if [[ -n "${DRR_CT:-}" ]]; then drr_args+=(--ct "$DRR_CT"); fi  # else drr_speed's default path, if present

# The GPU image may lack the pure-Python dependencies: install them from WHEELS (a folder of wheels
# carried to the machine) when set, else name what is missing.
missing=$("$py" -c 'import importlib.util as u; names = "monai nibabel pydicom SimpleITK mlflow pydantic yaml typer skimage scipy".split(); print(" ".join(n for n in names if u.find_spec(n) is None))')
if [[ -n "$missing" ]]; then
  if [[ -n "${WHEELS:-}" ]]; then
    "$py" -m pip install --quiet --no-index --find-links "$WHEELS" -e . >"$out/install.log" 2>&1 \
      || echo "warning: installing from $WHEELS failed (see $out/install.log)" >&2
  else
    echo "warning: not importable: $missing (set WHEELS=folder-of-wheels to install them)" >&2
  fi
fi

declare -A status
run_step() {  # name, time limit (s), command...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  status[$name]="{\"exit_code\": $rc, \"seconds\": $((SECONDS - start))}"
  tail -n 12 "$out/$name.log"
}

"$py" - "$out/environment.json" <<'PY'
import json, os, platform, subprocess, sys
import torch
info = {"python": sys.version, "torch": torch.__version__, "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm,power.limit",
                                         "--format=csv"], capture_output=True, text=True, timeout=20).stdout
except (OSError, subprocess.TimeoutExpired):
    info["nvidia_smi"] = None
json.dump(info, open(sys.argv[1], "w"), indent=2)
PY

wanted train_speed && run_step train_speed "$train_limit" "$py" -m benchmarks.train_speed "${train_args[@]}" --out "$out/train_speed.json"
wanted metrics_speed && run_step metrics_speed "$metrics_limit" "$py" -m benchmarks.metrics_speed "${metrics_args[@]}" --out "$out/metrics_speed.json"
wanted inference_speed && run_step inference_speed "$inference_limit" "$py" -m benchmarks.inference_speed "${inference_args[@]}" --out "$out/inference_speed.json"
wanted drr_speed && run_step drr_speed "$drr_limit" "$py" -m benchmarks.drr_speed "${drr_args[@]}" --out "$out/drr_speed.json"
wanted xray_train_speed && run_step xray_train_speed "$xray_limit" "$py" -m benchmarks.xray_train_speed "${xray_args[@]}" --out "$out/xray_train_speed.json"
wanted gpu_tests && run_step gpu_tests "$test_timeout" "$py" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$out/gpu_tests.xml"

wanted gpu_tests && "$py" - "$out" <<'PY'  # gpu_tests.xml -> gpu_tests.json
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
cases = []
if (out / "gpu_tests.xml").is_file():
    for case in ET.parse(out / "gpu_tests.xml").iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time", 0))})
(out / "gpu_tests.json").write_text(json.dumps(cases, indent=2))
PY

{
  echo "{"
  first=1
  for name in $steps; do
    [[ $first == 1 ]] || echo ","
    first=0
    printf '  "%s": %s' "$name" "${status[$name]}"
  done
  printf ',\n  "dry_run": %s,\n  "total_seconds": %s\n}\n' "$([[ $dry_run == 1 ]] && echo true || echo false)" "$SECONDS"
} >"$out/summary.json"
cat "$out/summary.json"
echo "results in $out"
for name in $steps; do
  [[ "${status[$name]}" == *'"exit_code": 0,'* ]] || exit 1
done
