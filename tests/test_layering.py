"""Imports run one way: cli/pipeline -> training -> inference -> models/metrics/transforms -> io/errors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medxlate"
# layer -> medxlate modules it must never import (at module level or inside functions)
FORBIDDEN = {
    "inference": ("medxlate.training", "medxlate.api", "medxlate.pipeline", "medxlate.evaluation", "medxlate.cli"),
    "checkpoint": ("medxlate.training", "medxlate.inference", "medxlate.models", "medxlate.data"),
    "models": ("medxlate.training", "medxlate.inference", "medxlate.data"),
    "transforms": ("medxlate.training", "medxlate.inference", "medxlate.models", "medxlate.data"),
    "tasks": ("medxlate.training", "medxlate.inference", "medxlate.data"),
    "metrics": ("medxlate.training", "medxlate.inference", "medxlate.models", "medxlate.data"),
    "xray": ("medxlate.training", "medxlate.inference", "medxlate.data"),
    "io": ("medxlate.training", "medxlate.inference", "medxlate.models", "medxlate.transforms"),
    "package": ("medxlate.training", "medxlate.api", "medxlate.pipeline", "medxlate.evaluation", "medxlate.cli"),
}


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py")) if (PACKAGE / layer).is_dir() else [PACKAGE / f"{layer}.py"]
    assert files and all(f.is_file() for f in files)
    offending = {
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in files
        for name in _imported_modules(path)
        if any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN[layer])
    }
    assert not offending, sorted(offending)


def test_importing_inference_does_not_import_training() -> None:
    code = (
        "import sys, medxlate.inference\n"
        "print(sorted(m for m in sys.modules if m.startswith(('medxlate.training', 'medxlate.data'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert done.stdout.strip() == "[]"
