"""`flawscope train`: options mirror TrainConfig 1:1, YAML + overrides, a rich summary and the run folder."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.errors import ConfigError
from flawscope.training.config import TrainConfig
from helpers.datasets import write_blob_folder


def test_every_config_field_is_an_option() -> None:
    command = typer.main.get_command(app).commands["train"]
    params = {p.name for p in command.params}
    assert set(TrainConfig.keys()) <= params
    assert params - set(TrainConfig.keys()) == {"config", "quiet"}


def test_train_from_yaml_with_cli_override(tmp_path) -> None:
    data = write_blob_folder(tmp_path / "data", n_per_class=12)
    yaml_path = tmp_path / "run.yaml"
    TrainConfig(data=str(data), model="small_cnn", input_size=32, epochs=5, batch_size=8, optimizer="adamw",
                lr=1e-2, patience=0, val_fraction=0.25, test_fraction=0.25, accelerator="cpu", devices=1,
                out=str(tmp_path / "runs")).to_yaml(yaml_path)
    result = CliRunner().invoke(app, ["train", "--config", str(yaml_path), "--epochs", "1", "--name", "cli",
                                      "--quiet"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    run = tmp_path / "runs" / "cli"
    assert "run folder" in result.output and "miss_rate" in result.output
    saved = TrainConfig.from_yaml(run / "config.yaml")
    assert saved.epochs == 1 and saved.lr == 1e-2  # the option overrode the YAML, the rest came from it
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 1


def test_unknown_yaml_key_fails_with_its_name(tmp_path) -> None:
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("data: x\nbatchsize: 4\n")
    result = CliRunner().invoke(app, ["train", "--config", str(yaml_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "'batchsize'" in str(result.exception)


def test_model_args_are_parsed_as_yaml_scalars() -> None:
    from flawscope.cli.train import parse_key_values
    from flawscope.errors import ConfigError

    assert parse_key_values(["reduce_dim=128", "head=fc", "flag=true"], "--model-args") == {
        "reduce_dim": 128, "head": "fc", "flag": True}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_key_values(["reduce_dim"], "--model-args")
