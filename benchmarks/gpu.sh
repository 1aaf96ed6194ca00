#!/usr/bin/env bash
# Every GPU benchmark and the GPU-marked tests in one go, JSON results in one folder, < 9 minutes.
#
#   benchmarks/gpu.sh [OUT_DIR]            # on a machine with a CUDA GPU (from the repository root)
#   benchmarks/gpu.sh --dry-run [OUT_DIR]  # tiny sizes on CPU in about a minute: checks the script
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3); WHEELS (a folder of
# wheels to install missing dependencies from, offline). Each step has its own
# time limit (train_speed 270 s, metrics_speed 90 s, inference_speed 60 s, GPU tests 90 s) so the run ends within
# 9 minutes; a step that fails or times out is recorded in summary.json and the others still run.
# Output: OUT_DIR/{environment.json, train_speed.json, metrics_speed.json, inference_speed.json, gpu_tests.json,
# summary.json} and one .log per step (default OUT_DIR: benchmarks/results/gpu-<UTC time>).
set -uo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
out="${1:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}"
if [[ -n "${PYTHON:-}" ]]; then py="$PYTHON"; elif [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ $dry_run == 1 ]]; then
  train_args=(--tiny --device cpu --steps 1 --warmup 0 --mlflow-steps 20)
  metrics_args=(--repeats 1 --warmup 0)
  inference_args=(--device cpu --shape 32 32 16 --roi 16 16 16 --num-downs 2 --ngf 4)
  train_limit=600 metrics_limit=600 test_timeout=600 inference_limit=600  # a busy CPU; the 8-minute budget is for the GPU run
else
  if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to $py: use --dry-run to check the script on CPU" >&2
    exit 2
  fi
  train_args=(--device cuda --batch 64 --compile)
  metrics_args=(--repeats 7)
  inference_args=(--device cuda --shape 512 512 300)
  train_limit=270 metrics_limit=90 test_timeout=90 inference_limit=60
fi

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

run_step train_speed "$train_limit" "$py" -m benchmarks.train_speed "${train_args[@]}" --out "$out/train_speed.json"
run_step metrics_speed "$metrics_limit" "$py" -m benchmarks.metrics_speed "${metrics_args[@]}" --out "$out/metrics_speed.json"
run_step inference_speed "$inference_limit" "$py" -m benchmarks.inference_speed "${inference_args[@]}" --out "$out/inference_speed.json"
run_step gpu_tests "$test_timeout" "$py" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$out/gpu_tests.xml"

"$py" - "$out" <<'PY'
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
  for name in train_speed metrics_speed inference_speed gpu_tests; do
    [[ $first == 1 ]] || echo ","
    first=0
    printf '  "%s": %s' "$name" "${status[$name]}"
  done
  printf ',\n  "dry_run": %s,\n  "total_seconds": %s\n}\n' "$([[ $dry_run == 1 ]] && echo true || echo false)" "$SECONDS"
} >"$out/summary.json"
cat "$out/summary.json"
echo "results in $out"
for name in train_speed metrics_speed inference_speed gpu_tests; do
  [[ "${status[$name]}" == *'"exit_code": 0,'* ]] || exit 1
done
