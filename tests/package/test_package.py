"""Model packages: export, verified loading, the card, references; CT -> MR and X-ray -> CT models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from medxlate.checkpoint import load_checkpoint
from medxlate.errors import CheckpointError, OutputError
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.package import export_package, resolve_reference
from tests.inference.lift_helpers import lift_strategy, write_lift_checkpoint

FILES = ["MODEL_CARD.md", "SHA256SUMS", "model.json", "model.pt"]


@pytest.fixture(scope="module")
def package(cli_checkpoint: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny CT -> MR checkpoint exported with a licence."""
    checkpoint, _ = cli_checkpoint
    return export_package(checkpoint, tmp_path_factory.mktemp("package") / "tiny_ct2mr", license_name="CC-BY-4.0")


def _copy(package: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(package, tmp_path / "copy"))


def test_package_translates_exactly_as_its_checkpoint(package: Path, cli_checkpoint: tuple[Path, Path]) -> None:
    checkpoint, ct = cli_checkpoint
    assert sorted(p.name for p in package.iterdir()) == FILES
    source = load_volume(ct)
    expected = Translator.from_checkpoint(checkpoint, device="cpu")(source)
    for reference in (package, str(package), package.resolve().as_uri()):
        translator = Translator.from_pretrained(reference, device="cpu")
        result = translator(source)
        torch.testing.assert_close(result.as_tensor(), expected.as_tensor(), rtol=0, atol=0)
        torch.testing.assert_close(result.affine, expected.affine, rtol=0, atol=0)
        assert translator.provenance["package"] == str(package.resolve())
        assert translator.provenance["license"] == "CC-BY-4.0"
    weights = torch.load(package / "model.pt", weights_only=True)  # inference only: no training state
    assert weights["kind"] == "inference" and not {"discriminator", "optimizer_g", "rng_states"} & set(weights)


@pytest.mark.parametrize("name", ["model.pt", "model.json"])
def test_a_flipped_byte_is_refused_naming_the_file(package: Path, tmp_path: Path, name: str) -> None:
    copy = _copy(package, tmp_path)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"copy/{name}: content differs from the package manifest"):
        Translator.from_pretrained(copy, device="cpu")


def test_a_truncated_or_missing_file_is_refused_naming_it(package: Path, tmp_path: Path) -> None:
    copy = _copy(package, tmp_path)
    weights = copy / "model.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.pt: content differs .* 1000 bytes\): .*truncated"):
        Translator.from_checkpoint(copy, device="cpu")
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"copy/model\.pt: missing from the model package"):
        Translator.from_checkpoint(copy, device="cpu")
    manifest = copy / "SHA256SUMS"  # a manifest that leaves out the weights does not vouch for them
    manifest.write_text("".join(line for line in manifest.read_text().splitlines(True) if "model.pt" not in line))
    with pytest.raises(CheckpointError, match=r"SHA256SUMS: does not list model\.pt"):
        Translator.from_checkpoint(copy, device="cpu")
    manifest.unlink()
    with pytest.raises(CheckpointError, match=r"copy: not a medxlate model package \(no SHA256SUMS\)"):
        Translator.from_checkpoint(copy, device="cpu")


def test_card_holds_the_model_facts_and_no_identifiers(package: Path, cli_checkpoint: tuple[Path, Path]) -> None:
    checkpoint, ct = cli_checkpoint
    content = load_checkpoint(checkpoint)
    record = json.loads((package / "model.json").read_text())
    card = (package / "MODEL_CARD.md").read_text()
    generator = Translator.from_checkpoint(checkpoint, device="cpu").generator
    assert record["task"] == {"name": "ct2mr", "direction": "CT -> MR", "geometry": "same_grid"}
    assert record["architecture"]["name"] == "unet" and record["architecture"]["spatial_dims"] == 2
    assert record["architecture"]["parameters"] == sum(p.numel() for p in generator.parameters()) > 0
    assert record["training_data"]["cases"] == {"train": 1, "val": 1}
    assert record["training_data"]["digest"] == content["training_data"]["digest"]
    assert len(record["training_data"]["digest"]) == 64
    assert record["training_domain"]["spacing_mm"]["median"] == [1.5, 1.25, 3.0]
    assert record["training_domain"]["field_of_view_mm"]["max"] == [30.0, 30.0, 36.0]
    assert record["training_domain"]["source_window"] == [-1024.0, 3071.0]
    assert record["validation"]["metrics"] == pytest.approx(content["metrics"])
    assert record["validation"]["epoch"] == 1 and "validation split" in record["validation"]["protocol"]
    assert "not for diagnosis" in record["synthetic_outputs"] and "synthetic" in record["intended_use"]
    assert record["license"] == "CC-BY-4.0" and record["medxlate_version"] == "0.1.0"
    facts = ["CT -> MR", f"{record['architecture']['parameters']:,} parameters", record["training_data"]["digest"]]
    facts += ["1 train, 1 val", "1.5 x 1.25 x 3", "CC-BY-4.0", "not for diagnosis", "validation split"]
    facts += [f"| ssim_body | {content['metrics']['ssim_body']:.4g} |", "medxlate 0.1.0"]
    assert [fact for fact in facts if fact not in card] == []
    # no path of the training machine (dataset, outputs, sources) and no case id anywhere in the package
    config = content["config"]
    secrets = [config["data"]["dataset"], config["train"]["output_dir"], str(ct.parent.parent), "p0", "p1"]
    packaged = load_checkpoint(package / "model.pt")
    for name in FILES:
        text = (package / name).read_bytes()
        assert not [s for s in secrets if s.encode() in text], name
    assert packaged["config"]["data"]["dataset"] == "<not packaged>"
    assert packaged["config"]["model"] == config["model"]


def test_lift_model_exports_and_loads(tmp_path: Path) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "xray.pt", views=("PA", "LL"))
    package = export_package(checkpoint, tmp_path / "xray_package")
    record = json.loads((package / "model.json").read_text())
    assert record["task"]["direction"] == "XR -> CT" and record["inference"]["kind"] == "lift"
    assert "DRR" in record["validation"]["protocol"] and record["license"] == "unspecified"
    views = torch.linspace(-1, 1, 2 * 16 * 16).reshape(2, 16, 16)
    expected = Translator.from_checkpoint(checkpoint, device="cpu").translate_views(views)
    result = Translator.from_pretrained(package, device="cpu").translate_views(views)
    torch.testing.assert_close(result.as_tensor(), expected.as_tensor(), rtol=0, atol=0)
    torch.testing.assert_close(result.affine, lift_strategy(("PA", "LL")).grid_affine().to(result.affine.dtype))


def test_export_never_replaces_a_folder_it_should_not(
    package: Path, cli_checkpoint: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, _ = cli_checkpoint
    other = tmp_path / "results"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"results: folder exists and is not empty; .* --overwrite"):
        export_package(checkpoint, other)
    with pytest.raises(OutputError, match=r"results: not a model package .* only replaces a package"):
        export_package(checkpoint, other, overwrite=True)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    copy = _copy(package, tmp_path)
    export_package(checkpoint, copy, license_name="MIT", overwrite=True)
    assert json.loads((copy / "model.json").read_text())["license"] == "MIT"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "results"]  # no temporary left behind
    Translator.from_pretrained(copy, device="cpu")
    inside = tmp_path / "holder"
    inside.mkdir()
    shutil.copy(checkpoint, inside / "model.pt")
    with pytest.raises(OutputError, match=r"holder: .* holding the input"):
        export_package(inside / "model.pt", inside, overwrite=True)


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("runs:/0123abcd/model", ("mlflow", "runs:/0123abcd/model")),
        ("models:/tiny/3", ("mlflow", "models:/tiny/3")),
        ("models:/tiny@champion", ("mlflow", "models:/tiny@champion")),
        ("file:///data/my%20model", ("path", Path("/data/my model"))),
        ("file://localhost/data/pkg", ("path", Path("/data/pkg"))),
        ("relative/pkg", ("path", Path("relative/pkg"))),
        (r"C:\models\pkg", ("path", Path(r"C:\models\pkg"))),
    ],
)
def test_references_resolve_to_a_path_or_mlflow(reference: str, expected: tuple[str, object]) -> None:
    assert resolve_reference(reference) == expected


@pytest.mark.parametrize(
    "reference", ["https://example.org/model.zip", "http://host/pkg", "hf://org/model", "s3://b/k"]
)
def test_hub_references_are_refused(reference: str) -> None:
    with pytest.raises(CheckpointError, match="never downloads from a hub"):
        Translator.from_pretrained(reference)
    with pytest.raises(CheckpointError, match="a file:// URL on host 'server'"):
        Translator.from_pretrained("file://server/share/pkg")
