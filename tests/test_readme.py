"""The README and docs/*.md as tested documentation: their ```python blocks run, their relative links resolve.

Every ```python block of README.md and of each ``docs/*.md`` page runs as written (so the documentation
cannot rot). Each file's blocks run in order, in one namespace (like a notebook), in a temporary folder
of its own holding what they name: ``ct.nii.gz``, ``mr.nii.gz`` and ``body_mask.nii.gz`` (a tiny LAS,
anisotropic phantom), a prepared ``my_dataset/`` and a copy of the repository's ``configs/``. A new
``docs/<topic>.md`` with ```python blocks is picked up without editing this file. The code itself is
never edited. The one concession to test time: ``mx.load_config`` is wrapped so the generator and
discriminator are tiny and epochs short (``TINY_MODEL``) and MLflow writes to a temporary store; every
override the block passes itself still applies on top, so what it asks for (e.g. ``train.epochs: 2``
with the config's default schedule) is exactly what runs.

The README is the front door: at most ``README_MAX_LINES`` lines, opening with the two commands of the
quick start; everything else lives in ``docs/``.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import medxlate
from medxlate.data.prepare import prepare_dataset
from tests.conftest import phantom, tiny_affine, write_nifti, write_paired_folder

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_LINES = 250
QUICK_START = ["make demo", "make test"]
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
ANY_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), the target up to the first space or closing parenthesis; [ref]: target
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...
TINY_MODEL = {
    "model.generator_params": {"num_downs": 3, "ngf": 4},
    "model.discriminator_params": {"ndf": 4, "n_layers": 2},
    "train.max_steps_per_epoch": 2,
}


def doc_files() -> list[Path]:
    """README.md and every docs/*.md page, in a stable order."""
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def readme_blocks(text: str) -> list[str]:
    """The bodies of a Markdown file's fenced ```python blocks, in order."""
    return [match.group(1) for match in PYTHON_BLOCK.finditer(text)]


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped, spaces as '-')."""
    seen: Counter[str] = Counter()
    anchors = set()
    for line in ANY_BLOCK.sub("", text).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return anchors


def broken_links(doc: Path) -> list[str]:
    """Every relative link or image of ``doc`` whose file (or heading anchor, in a Markdown file) is missing.

    Links inside code blocks and inline code are not links; external ones (``https:``, ``mailto:``) are
    not checked.
    """
    text = INLINE_CODE.sub("", ANY_BLOCK.sub("", doc.read_text(encoding="utf-8")))
    targets = [m.group(1) for m in INLINE_LINK.finditer(text)] + [m.group(1) for m in REFERENCE_LINK.finditer(text)]
    problems = []
    for target in targets:
        if EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        if not resolved.exists():
            problems.append(f"{target}: no such file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved.read_text("utf-8")):
            problems.append(f"{target}: no heading with anchor #{anchor} in {resolved.name}")
    return problems


PYTHON_DOCS = [doc for doc in doc_files() if readme_blocks(doc.read_text(encoding="utf-8"))]


def test_block_extraction_finds_every_python_block() -> None:
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = 2\nc = 3\n```\n"
    assert readme_blocks(text) == ["a = 1\n", "b = 2\nc = 3\n"]
    for doc in doc_files():
        fences = len(re.findall(r"^```python", doc.read_text(encoding="utf-8"), re.MULTILINE))
        assert len(readme_blocks(doc.read_text(encoding="utf-8"))) == fences, _relative(doc)
    assert README in PYTHON_DOCS


def test_readme_is_a_short_front_door_opening_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move sections to docs/*.md"
    first_block = ANY_BLOCK.search(text)
    assert first_block is not None
    # nothing but the title and the quick-start heading comes before it
    before = [line for line in text[: first_block.start()].splitlines() if line.strip()]
    assert before == ["# medxlate", "## Quick start"]
    commands = [line.split("#", 1)[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == QUICK_START


def test_broken_links_finds_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "picture.png").write_bytes(b"png")
    (tmp_path / "docs" / "topic.md").write_text("# Topic\n\n## How it works (in short)\n\n## How it works (in short)\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n![p](../picture.png) [ok](topic.md#how-it-works-in-short) [dup](topic.md#how-it-works-in-short-1)\n"
        "[self](#page) [web](https://example.org/x.md) `[code](gone.md)`\n```\n[block](gone.md)\n```\n"
        "![p](picture.png) [gone](missing.md) [anchor](topic.md#no-such) [me](#nope)\n[ref]: ../nothing.txt\n"
    )
    found = broken_links(page)
    assert [problem.split(":")[0] for problem in found] == [
        "picture.png",
        "missing.md",
        "topic.md#no-such",
        "#nope",
        "../nothing.txt",
    ]


@pytest.mark.parametrize("doc", doc_files(), ids=_relative)
def test_relative_links_resolve(doc: Path) -> None:
    assert broken_links(doc) == []


@pytest.fixture(scope="module")
def prepared_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prepared tiny dataset, copied into each file's folder (blocks may write into it)."""
    root = tmp_path_factory.mktemp("docs_dataset")
    prepare_dataset(write_paired_folder(root / "pairs"), root / "my_dataset")
    return root / "my_dataset"


def _write_inputs(folder: Path, dataset: Path) -> None:
    ct, mr, body = phantom(5)
    write_nifti(ct, folder / "ct.nii.gz", tiny_affine())
    write_nifti(mr, folder / "mr.nii.gz", tiny_affine())
    write_nifti(body, folder / "body_mask.nii.gz", tiny_affine())
    shutil.copytree(REPO / "configs", folder / "configs")
    shutil.copytree(dataset, folder / "my_dataset")


@pytest.mark.parametrize("doc", PYTHON_DOCS, ids=_relative)
def test_python_blocks_run(doc: Path, prepared_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _write_inputs(work, prepared_dataset)
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    real_load_config = medxlate.load_config

    def load_tiny_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> medxlate.ExperimentConfig:
        return real_load_config(path, {**TINY_MODEL, **(overrides or {})})

    monkeypatch.setattr(medxlate, "load_config", load_tiny_config)
    namespace: dict[str, Any] = {"__name__": f"__doc_{doc.stem}__"}
    for number, block in enumerate(readme_blocks(doc.read_text(encoding="utf-8")), start=1):
        code = compile(block, f"{_relative(doc)} python block {number}", "exec")
        exec(code, namespace)  # the documentation's own code, unedited
