"""`flawscope train` options and help: limit-batches counts, --ok-class, readable defaults, quiet runs."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.training.config import TrainConfig
from flawscope.training.run import RunResult
from helpers.datasets import make_folders_dataset


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """The TrainConfig `flawscope train` hands to `train`, which is replaced by a stub that trains nothing."""
    seen: list[TrainConfig] = []

    def fake_train(cfg: TrainConfig, progress: bool = True) -> RunResult:
        seen.append(cfg)
        return RunResult(run_dir=tmp_path / "run")

    monkeypatch.setattr("flawscope.training.run.train", fake_train)
    return seen


def _invoke(*args: str):
    result = CliRunner().invoke(app, ["train", "--data", "d", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_limit_batches_one_is_one_batch(captured) -> None:
    _invoke("--limit-batches", "1")
    assert captured[-1].limit_batches == 1 and isinstance(captured[-1].limit_batches, int)
    _invoke("--limit-batches", "0.25")
    assert captured[-1].limit_batches == 0.25
    result = CliRunner().invoke(app, ["train", "--data", "d", "--limit-batches", "1.5"])
    assert result.exit_code != 0 and "limit_batches" in str(result.exception)


def test_ok_class_is_repeatable_and_overrides_the_yaml(captured, tmp_path) -> None:
    _invoke("--ok-class", "class_0", "--ok-class", "good_parts")
    assert captured[-1].ok_classes == ["class_0", "good_parts"]
    _invoke()
    assert captured[-1].ok_classes == []
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("data: d\nok_classes: [from_yaml]\n")
    _invoke("--config", str(yaml_path))
    assert captured[-1].ok_classes == ["from_yaml"]  # not given on the command line: the YAML's stays
    _invoke("--config", str(yaml_path), "--ok-class", "cli")
    assert captured[-1].ok_classes == ["cli"]


def test_help_shows_readable_defaults() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})
    assert result.exit_code == 0
    text = re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", result.output))
    assert "_MISSING_TYPE" not in text and "object at 0x" not in text
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "(default: --resize)" in text
    assert "--ok-class" in text and "--limit-batches" in text


def test_quiet_training_run_prints_no_litlogger_tip(tmp_path: Path, capfd) -> None:
    from flawscope.training.run import train

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    # Lightning's messages end at the "lightning.pytorch" logger's handler; collect what reaches it.
    handler = Collect()
    logging.getLogger("lightning.pytorch").addHandler(handler)
    try:
        data = make_folders_dataset(tmp_path / "data", {"ok": 6, "defect": 6})
        cfg = TrainConfig(data=str(data), model="small_cnn", input_size=32, epochs=1, batch_size=4,
                          patience=0, val_fraction=0.25, test_fraction=0.25, accelerator="cpu", devices=1,
                          limit_batches=1, out=str(tmp_path / "runs"), name="quiet")
        train(cfg, progress=False)
    finally:
        logging.getLogger("lightning.pytorch").removeHandler(handler)
    out, err = capfd.readouterr()
    assert "litlogger" not in (out + err).lower()
    assert not [r for r in records if "litlogger" in r.lower()]
