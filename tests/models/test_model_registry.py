"""Registries: names, did-you-mean errors, parameter checking before construction."""

from __future__ import annotations

import pytest

from medxlate.errors import ConfigError, MedxlateError, RegistryError
from medxlate.models import (
    ADVERSARIAL_LOSSES,
    DISCRIMINATORS,
    GENERATORS,
    Registry,
    build_discriminator,
    build_generator,
    get_adversarial_loss,
)


def test_registered_names() -> None:
    assert GENERATORS.names() == ("resnet", "unet", "x2ct")
    assert DISCRIMINATORS.names() == ("patchgan",)
    assert ADVERSARIAL_LOSSES.names() == ("hinge", "lsgan", "vanilla")
    assert "unet" in GENERATORS and "unet_256" not in GENERATORS  # no aliases


def test_unknown_generator_suggests_closest_and_lists_all() -> None:
    with pytest.raises(RegistryError) as info:
        build_generator("unet3", 2, 1, 1)
    assert str(info.value) == "unknown generator 'unet3', did you mean 'unet'? available: resnet, unet, x2ct"
    assert isinstance(info.value, KeyError) and isinstance(info.value, MedxlateError)


def test_unknown_name_without_close_match_lists_available() -> None:
    with pytest.raises(RegistryError, match=r"^unknown discriminator 'zzz'; available: patchgan$"):
        build_discriminator("zzz", 2, 2)


def test_unknown_adversarial_loss() -> None:
    with pytest.raises(RegistryError, match=r"unknown adversarial loss 'lsgann', did you mean 'lsgan'\?"):
        get_adversarial_loss("lsgann")


def test_unknown_parameter_names_model_and_parameter() -> None:
    with pytest.raises(ConfigError) as info:
        build_generator("unet", 2, 1, 1, ngff=8)
    message = str(info.value)
    assert "generator 'unet'" in message
    assert "unknown parameter 'ngff'" in message
    assert "did you mean 'ngf'?" in message
    assert "num_downs" in message  # accepted parameters are listed


def test_unknown_parameter_for_discriminator() -> None:
    with pytest.raises(ConfigError, match=r"discriminator 'patchgan' got unknown parameter 'ngf'"):
        build_discriminator("patchgan", 2, 2, ngf=8)


def test_missing_required_parameter() -> None:
    with pytest.raises(ConfigError, match=r"generator 'unet' is missing required parameter\(s\): 'in_channels'"):
        GENERATORS.build("unet", spatial_dims=2, out_channels=1)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"norm": "batchnorm"}, "norm"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_downs": 1}, "num_downs"),
        ({"ngf": 0}, "ngf"),
        ({"max_mult": 2.5}, "max_mult"),
    ],
)
def test_bad_generator_values_name_the_parameter(params: dict[str, object], parameter: str) -> None:
    with pytest.raises(ConfigError, match=rf"generator 'unet': parameter '{parameter}' got"):
        build_generator("unet", 2, 1, 1, **params)


def test_bad_spatial_dims_and_norm_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"parameter 'spatial_dims' got 4; expected 1, 2 or 3"):
        build_discriminator("patchgan", 4, 2)
    with pytest.raises(ConfigError, match=r"'norm' got 'instanc'; did you mean 'instance'\?"):
        build_discriminator("patchgan", 2, 2, norm="instanc")


def test_registry_register_build_and_duplicates() -> None:
    widgets: Registry[tuple[int, str]] = Registry("widget")

    @widgets.register("pair")
    def make_pair(size: int, label: str = "x") -> tuple[int, str]:
        return size, label

    assert widgets.names() == ("pair",) and len(widgets) == 1
    assert widgets.build("pair", size=3) == (3, "x")
    assert widgets.get("pair") is make_pair
    with pytest.raises(ValueError, match="already registered"):
        widgets.register("pair")(make_pair)
    with pytest.raises(RegistryError, match=r"unknown widget 'par', did you mean 'pair'\? available: pair"):
        widgets.get("par")


def test_empty_registry_message() -> None:
    with pytest.raises(RegistryError, match=r"available: \(none\)"):
        Registry("gadget").get("thing")
