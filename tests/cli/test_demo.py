"""The main job end to end on a tiny synthetic set."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.demo import DemoConfig
from flawscope.errors import ConfigError


def test_demo_runs_end_to_end_and_can_run_again(tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path / "demo"), "--n-images", "40", "--image-size", "64",
            "--patch-size", "32", "--epochs", "1", "--models", "sa_bcnn,small_cnn", "--backbone", "small_cnn",
            "--batch-size", "16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = (tmp_path / "demo" / "comparison.md").read_text()
    assert "sa_bcnn (small_cnn)" in table and "small_cnn" in table
    for name in ("sa_bcnn", "small_cnn"):
        assert (tmp_path / "demo" / "runs" / name / "report.html").is_file()
    patches = (tmp_path / "demo" / "patches" / "manifest.csv").read_text().splitlines()
    assert len(patches) > 1 and "crop" in patches[0] and ",defect," in "\n".join(patches)
    again = CliRunner().invoke(app, args)  # reuses the data, replaces its own runs
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("kwargs, field", [
    ({"n_images": 10}, "n_images"), ({"patch_size": 512}, "patch_size"), ({"models": ()}, "models")])
def test_demo_config_refuses_bad_values(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DemoConfig(**kwargs)
