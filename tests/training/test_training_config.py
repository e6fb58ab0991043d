"""TrainConfig: YAML round trip, unknown keys, overrides and value checks."""

from __future__ import annotations

import pytest

from flawscope.errors import ConfigError
from flawscope.training.config import TrainConfig


def test_paper_defaults() -> None:
    cfg = TrainConfig(data="d")
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == ("sgd", 1e-3, 16, 50)


def test_yaml_round_trip(tmp_path) -> None:
    cfg = TrainConfig(data="d", model="small_cnn", input_size="64x48", lr="3e-4", limit_batches=2.0,
                      threshold_method="miss_rate", miss_rate_target=0.01, by_group=False, devices=2)
    assert cfg.input_size == (64, 48) and cfg.lr == 3e-4 and cfg.limit_batches == 2 and cfg.devices == "2"
    path = cfg.to_yaml(tmp_path / "run.yaml")
    assert TrainConfig.from_yaml(path) == cfg


def test_unknown_yaml_key_names_it_and_lists_valid_keys(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data: d\nepoch: 3\n")
    match = r"run\.yaml: unknown option 'epoch'\. Did you mean 'epochs'\?.*batch_size"
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="unknown option 'lrate'"):
        TrainConfig(data="d").replace(lrate=1.0)


def test_cli_overrides_win_over_yaml(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data: d\nepochs: 3\nlr: 0.1\n")
    cfg = TrainConfig.from_yaml(path, lr=0.5)
    assert cfg.epochs == 3 and cfg.lr == 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "detect"}, "task 'detect' is not valid; use one of classify, segment"),
        ({"optimizer": "adam"}, "use one of sgd, adamw"),
        ({"lr": 0}, "lr must be positive"),
        ({"epochs": "many"}, "epochs must be a number, got 'many'"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "leaves nothing to train on"),
        ({"threshold_method": "miss_rate"}, "needs miss_rate_target"),
        ({"input_size": "big"}, "input_size 'big' is not understood"),
        ({"class_weights": "inverse"}, "use one of none, balanced"),
    ],
)
def test_bad_values_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(data="d", **kwargs)


def test_yaml_that_is_not_a_mapping(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
