"""`flawscope models list|info`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.errors import ConfigError

runner = CliRunner()


def test_models_list_segment() -> None:
    result = runner.invoke(app, ["models", "list", "--task", "segment"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("unet_small", "unet", "deeplabv3plus"):
        assert name in result.output
    assert "1.94M" in result.output  # unet_small, 1-channel 224 px 2 classes
    assert "resnet18 " not in result.output


def test_models_list_all_has_classifiers() -> None:
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "sa_bcnn" in result.output and "11.17M" in result.output  # resnet18 + 1-logit FC


def test_models_info() -> None:
    result = runner.invoke(app, ["models", "info", "sa_bcnn"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "BilinearCNN" in result.output and "11,470,146" in result.output
    assert "reduce_dim" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["models", "info", "sa_bcn"], "Did you mean 'sa_bcnn'"),
        (["models", "list", "--task", "detect"], "classify"),
    ],
)
def test_models_cli_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ConfigError)
    assert message in str(result.exception)
