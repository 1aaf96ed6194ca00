"""Import weight: a lazy top level (PEP 562), a fast CLI, and a compute core free of mlflow/SimpleITK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "monai", "mlflow", "SimpleITK", "pydantic", "scipy", "nibabel", "pydicom", "rich")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_import_and_help_load_nothing_heavy() -> None:
    code = f"""
import json, sys
import medxlate
before = sorted(m for m in {HEAVY!r} if m in sys.modules)
sys.argv = ["medxlate", "--help"]
from medxlate.cli import main
main()
after = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps([before, after]))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    help_text, _, last = result.stdout.rstrip().rpartition("\n")
    assert json.loads(last) == [[], []]
    assert "translate" in help_text and "--version" in help_text


def test_public_names_resolve_lazily() -> None:
    import medxlate

    assert medxlate.__all__ == sorted(medxlate.__all__)
    assert set(medxlate.__all__) == {*medxlate._EXPORTS, *medxlate._SUBMODULES, "__version__"}
    assert set(medxlate.__all__) <= set(dir(medxlate))
    from medxlate.errors import MedxlateError
    from medxlate.inference import Translator

    assert medxlate.Translator is Translator and medxlate.MedxlateError is MedxlateError
    assert medxlate.metrics.ssim.__module__ == "medxlate.metrics.structural"
    try:
        medxlate.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no attribute 'no_such_name'" in str(e)
    else:
        raise AssertionError("unknown attribute did not raise")


def test_every_subpackage_is_a_lazy_attribute() -> None:
    """``mx.xray`` works like ``mx.metrics``: each subpackage is listed and imported on first access only."""
    import medxlate

    packages = sorted(p.parent.name for p in (REPO / "medxlate").glob("*/__init__.py"))
    assert "xray" in packages and sorted(medxlate._SUBMODULES) == packages
    code = f"""
import sys
import medxlate as mx
assert not any(m.startswith("medxlate.") for m in sys.modules), sorted(sys.modules)
for name in {packages!r}:
    module = getattr(mx, name)
    assert module is sys.modules["medxlate." + name], name
print(mx.xray.__name__, mx.metrics.ssim.__module__)
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["medxlate.xray", "medxlate.metrics.structural"]


BLOCKED_CORE = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "SimpleITK"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
import torch
from monai.data import MetaTensor
from medxlate import metrics, models
from medxlate.inference import Translator
from medxlate.transforms import Preprocessing

torch.manual_seed(0)
generator = models.build_generator("unet", spatial_dims=2, in_channels=1, out_channels=1, num_downs=2, ngf=4)
prep = Preprocessing(source_window=(-1000.0, 1000.0), target_percentiles=(1.0, 99.0), target_range=(0.0, 100.0),
                     divisible=4)
affine = torch.diag(torch.tensor([-1.5, 1.25, 3.0, 1.0], dtype=torch.float64))
source = MetaTensor(torch.linspace(-1000, 1000, 16 * 16 * 3).reshape(1, 16, 16, 3), affine=affine)
out = Translator(generator, prep, device="cpu")(source)
assert out.shape == source.shape and bool(torch.isfinite(out).all())
assert torch.equal(out.affine.to(torch.float64), affine)
slices = out.as_tensor().permute(3, 0, 1, 2)  # (Z, 1, X, Y): a batch of 2D slices
torch.testing.assert_close(metrics.ssim(slices, slices, data_range=100.0, spatial_dims=2), torch.ones(3))
torch.testing.assert_close(metrics.mae(slices, slices + 2.0, spatial_dims=2), torch.full((3,), 2.0))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "SimpleITK"))
print("ok", loaded)
"""


def test_compute_core_runs_without_mlflow_and_simpleitk() -> None:
    result = run_python(BLOCKED_CORE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "ok []"
