"""Naming the defect-free classes (`ok_classes`, `--ok-class`) in train, evaluate and benchmark."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.errors import DatasetError
from flawscope.training.config import TrainConfig
from helpers.datasets import save, tiny_image

runner = CliRunner()


def _numbered_classes(root: Path, n: int = 8) -> Path:
    """root/class_0 (clean) and root/class_1 (a bright square): names the ok-name rule cannot read."""
    for i in range(2 * n):
        bad = i % 2 == 1
        save(root / f"class_{int(bad)}" / f"{i:03d}.png", tiny_image(i, bad)[0])
    return root


FAST = dict(model="small_cnn", input_size=32, epochs=1, batch_size=4, patience=0, val_fraction=0.25,
            test_fraction=0.25, accelerator="cpu", devices=1)


def test_benchmark_trains_and_evaluates_with_ok_classes(tmp_path: Path) -> None:
    from flawscope.evaluation.evaluate import evaluate
    from flawscope.models.checkpoint import load_model_from_checkpoint
    from flawscope.training.benchmark import run_benchmark
    from flawscope.training.run import load_index

    data = _numbered_classes(tmp_path / "data")
    with pytest.raises(DatasetError, match="--ok-class"):  # both folders read as defective
        load_index(TrainConfig(data=str(data), **FAST))
    base = TrainConfig(ok_classes=["class_0"], **FAST)
    result = run_benchmark(data, ["small_cnn"], out=tmp_path / "bench", base=base, latency_batch_sizes=[1],
                           latency_iters=1, latency_threads=1)
    run = result.run_dirs[0]
    assert TrainConfig.from_yaml(run / "config.yaml").ok_classes == ["class_0"]
    assert load_model_from_checkpoint(run / "model.pt").config.defective_classes == ("class_1",)
    with (run / "eval-test" / "predictions.csv").open(newline="") as f:
        truths = {row["defective"] for row in csv.DictReader(f)}
    assert truths and truths <= {"0", "1", "True", "False"}  # every test image has a known truth
    ev = evaluate(run, split="all", out=tmp_path / "ev", write_report=False, ok_classes=["class_0"])
    assert ev.metrics["n_labelled"] == 16
    with pytest.raises(DatasetError, match=r"ok classes \['nope'\].*class_0"):
        evaluate(run, split="all", out=tmp_path / "ev2", write_report=False, ok_classes=["nope"])


def test_evaluate_cli_passes_ok_classes(monkeypatch, tmp_path: Path) -> None:
    seen: dict = {}

    def fake_evaluate(source, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr("flawscope.evaluation.evaluate.evaluate", fake_evaluate)
    runner.invoke(app, ["evaluate", str(tmp_path), "--ok-class", "class_0", "--ok-class", "good"])
    assert seen["ok_classes"] == ["class_0", "good"]
    runner.invoke(app, ["evaluate", str(tmp_path)])
    assert seen["ok_classes"] is None


def test_benchmark_cli_passes_ok_classes(monkeypatch, tmp_path: Path) -> None:
    seen: dict = {}

    def fake_run_benchmark(data, models, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr("flawscope.training.benchmark.run_benchmark", fake_run_benchmark)
    runner.invoke(app, ["benchmark", "--data", str(tmp_path), "--models", "small_cnn",
                        "--ok-class", "class_0", "--limit-batches", "1"])
    assert seen["base"].ok_classes == ["class_0"]
    assert seen["base"].limit_batches == 1 and isinstance(seen["base"].limit_batches, int)
    runner.invoke(app, ["benchmark", "--data", str(tmp_path), "--models", "small_cnn"])
    assert seen["base"].ok_classes == []
    assert json.dumps(seen["base"].to_dict())  # still YAML/JSON friendly
