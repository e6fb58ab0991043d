"""Presets: the measured recipe per task; the user's options win; none = TrainConfig's plain defaults."""

from __future__ import annotations

import pytest

from flawscope.errors import ConfigError
from flawscope.training.config import TrainConfig
from flawscope.training.presets import PRESETS, apply_preset


def test_auto_is_the_tasks_recipe_and_given_options_win() -> None:
    cfg = TrainConfig.with_preset("auto", data="d", epochs=2)
    patch = PRESETS["xray-patch"].options
    assert cfg.preset == "xray-patch" and cfg.model == patch["model"] and cfg.epochs == 2
    assert cfg.normalize == patch["normalize"] and cfg.resize is patch["resize"]
    seg = TrainConfig.with_preset("auto", data="d", model="unet")
    assert seg.preset == "xray-segment" and seg.task == "segment" and seg.backbone == "resnet18"


def test_none_keeps_the_plain_defaults() -> None:
    assert TrainConfig.with_preset("none", data="d") == TrainConfig(data="d", preset="none")
    assert TrainConfig.with_preset(None, data="d") == TrainConfig(data="d")


def test_another_model_drops_the_presets_builder_options() -> None:
    cfg = TrainConfig.with_preset("xray-segment", data="d", model="unet_small")
    assert cfg.model == "unet_small" and cfg.backbone is None and cfg.input_size == (64, 64)


def test_every_preset_builds_a_valid_config() -> None:
    for name, preset in PRESETS.items():
        cfg = TrainConfig.with_preset(name, data="d")
        assert cfg.task == preset.task and preset.evidence and preset.summary


@pytest.mark.parametrize("name, options, match", [
    ("xray-pach", {}, "preset 'xray-pach' is unknown. Did you mean 'xray-patch'.*auto, none"),
    ("xray-segment", {"task": "classify"}, "'xray-segment' is a segment recipe but this run is classify"),
])
def test_bad_presets_are_named(name: str, options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_preset(name, options)


def test_a_run_records_its_preset_and_its_yaml_reads_back(tmp_path) -> None:  # noqa: ANN001
    cfg = TrainConfig.with_preset("xray-patch", data="d", lr=0.01)
    path = cfg.to_yaml(tmp_path / "config.yaml")
    options = TrainConfig.read_yaml(path)
    assert options.pop("preset") == "xray-patch"
    again = TrainConfig.with_preset("auto", **options)
    assert again == cfg


def test_auto_with_another_model_keeps_that_models_plain_defaults() -> None:
    cfg = TrainConfig.with_preset("auto", data="d", model="vgg16")
    assert cfg.preset is None and cfg == TrainConfig(data="d", model="vgg16")
    named = TrainConfig.with_preset("xray-patch", data="d", model="vgg16")
    assert named.preset == "xray-patch" and named.normalize == PRESETS["xray-patch"].options["normalize"]
