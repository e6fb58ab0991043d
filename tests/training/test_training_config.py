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


@pytest.mark.parametrize(("given", "expected"), [(1, 1), (1.0, 1), ("1", 1), (2.0, 2), (20, 20), (0.25, 0.25),
                                                 ("0.5", 0.5), (None, None)])
def test_limit_batches_whole_numbers_are_batch_counts(given, expected) -> None:
    cfg = TrainConfig(data="d", limit_batches=given)
    assert cfg.limit_batches == expected
    # Lightning reads an int as a batch count and a float as a fraction of the epoch.
    assert type(cfg.limit_batches) is type(expected)


@pytest.mark.parametrize("given", [0, 0.0, -1, 1.5, 2.25, "half"])
def test_limit_batches_must_be_a_count_or_a_fraction(given) -> None:
    with pytest.raises(ConfigError, match="limit_batches"):
        TrainConfig(data="d", limit_batches=given)


def test_ok_classes_option(tmp_path) -> None:
    assert TrainConfig(data="d").ok_classes == []
    assert TrainConfig(data="d", ok_classes="class_0").ok_classes == ["class_0"]  # one name, not its letters
    path = tmp_path / "run.yaml"
    path.write_text("data: d\nok_classes: [class_0, good_parts]\n")
    cfg = TrainConfig.from_yaml(path)
    assert cfg.ok_classes == ["class_0", "good_parts"]
    assert TrainConfig.from_yaml(cfg.to_yaml(tmp_path / "again.yaml")) == cfg
    with pytest.raises(ConfigError, match="ok_classes must be a list of class names"):
        TrainConfig(data="d", ok_classes=[1, 2])
