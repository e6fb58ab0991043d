"""`flawscope benchmark`: Table III files with mean ± std, k-fold splits, refusals before any training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.data.sources import load_dataset
from flawscope.data.splits import load_split
from flawscope.errors import ConfigError
from flawscope.training.benchmark import run_benchmark, write_fold_splits
from flawscope.training.config import TrainConfig
from helpers.datasets import blob_image, save

runner = CliRunner()
SIZE = 32


def _dataset(root: Path, n: int = 20) -> Path:
    """root/{ok,defect}/*.png: 32x32 blob images, a bright 6x6 blob in the defective half."""
    for i in range(n):
        name = "defect" if i % 2 else "ok"
        save(root / name / f"{name}_{i:02d}.png", blob_image(i, i % 2 == 1, SIZE, blob=6)[0])
    return root


FAST = ["--epochs", "1", "--input-size", "32", "--batch-size", "8", "--latency-batch-sizes", "1,4",
        "--latency-iters", "2", "--latency-threads", "1", "--quiet", "--set", "accelerator=cpu",
        "--set", "devices=1", "--set", "patience=0", "--set", "val_fraction=0.25",
        "--set", "test_fraction=0.25"]


def test_benchmark_two_models_two_seeds_writes_table_iii(tmp_path: Path) -> None:
    data, out = _dataset(tmp_path / "data"), tmp_path / "bench"
    args = ["benchmark", "--data", str(data), "--models", "small_cnn,squeezenet1_1_reduced", "--seeds", "0,1",
            "--out", str(out), *FAST]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    md = (out / "table.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("| small_cnn") or ln.startswith("| squeezenet")]
    assert len(lines) == 2 and all("±" in ln for ln in lines)  # metrics over 2 seeds: mean ± std
    assert "| Params | FLOPs |" in md and "| CPU ms | GPU ms |" in md
    records = json.loads((out / "table.json").read_text())
    assert [r["model"] for r in records] == ["small_cnn", "squeezenet1_1_reduced"]
    assert all(r["n_runs"] == 2 for r in records)
    with (out / "table.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"precision", "precision_std", "params", "flops", "cpu_ms", "cpu_ms_b4", "gpu_ms"} <= set(rows[0])
    for r in records:
        assert r["params"] > 0 and r["flops"] > 0 and r["cpu_ms"] > 0
        assert r["TP"] + r["FN"] > 0  # test parts hold defects in both seeds
        per_seed = [json.loads((out / "runs" / r["model"] / f"seed{s}" / "metrics.json").read_text())["test"]
                    for s in (0, 1)]
        assert r["precision"] == pytest.approx(np.nanmean([m["precision"] or np.nan for m in per_seed]))
    for name in ("pr_curves.png", "miss_false_alarm_curves.png", "runs.csv", "benchmark.yaml"):
        assert (out / name).is_file(), name

    # A second call finds every run finished and trains nothing; other options are refused.
    same = TrainConfig(epochs=1, input_size=32, batch_size=8, accelerator="cpu", devices="1", patience=0,
                       val_fraction=0.25, test_fraction=0.25)
    again = run_benchmark(data, ["small_cnn"], out, seeds=[0, 1], base=same, latency_batch_sizes=(1,),
                          latency_iters=1)
    assert len(again.reused) == 2
    with pytest.raises(ConfigError, match="epochs=1"):
        run_benchmark(data, ["small_cnn"], out, seeds=[0], base=same.replace(epochs=3))


def test_fold_splits_test_every_image_once(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    cfg = TrainConfig(data=str(data), val_fraction=0.2)
    folds = write_fold_splits(cfg, 4, tmp_path / "bench")

    assert [label for label, _ in folds] == ["fold0", "fold1", "fold2", "fold3"]
    index = load_dataset(data)
    tested: list[str] = []
    for label, path in folds:
        assert Path(path) == tmp_path / "bench" / "folds" / label / "split.csv"
        split = load_split(index, path)
        parts = {p: {index.samples[i].image.name for i in split.part(p)} for p in ("train", "val", "test")}
        assert parts["train"] and parts["val"] and parts["test"]
        assert not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
        tested += parts["test"]
    assert sorted(tested) == sorted(p.name for p in data.rglob("*.png"))  # every image tested exactly once


def test_kfold_runs_train_on_their_fold_split(tmp_path: Path) -> None:
    data, out = _dataset(tmp_path / "data"), tmp_path / "bench"
    base = TrainConfig(epochs=1, input_size=32, batch_size=8, accelerator="cpu", devices="1", patience=0)
    result = run_benchmark(data, ["small_cnn"], out, folds=2, base=base, latency_batch_sizes=(1,),
                           latency_iters=1, latency_threads=1)

    assert [d.name for d in result.run_dirs] == ["fold0", "fold1"]
    for run_dir in result.run_dirs:
        fold_split = out / "folds" / run_dir.name / "split.csv"
        saved = TrainConfig.from_yaml(run_dir / "config.yaml")
        assert saved.split_file == str(fold_split) and saved.data == str(data)
        assert (run_dir / "split.csv").read_text() == fold_split.read_text()
    assert json.loads((out / "table.json").read_text())[0]["n_runs"] == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"models": ["small_cnn", "resnet_18"]}, "resnet_18"),
     ({"models": ["small_cnn", "small_cnn"]}, "twice"),
     ({"models": ["small_cnn"], "folds": 2, "seeds": [0]}, "not both"),
     ({"models": ["small_cnn"], "folds": 1}, "at least 2")],
)
def test_bad_options_are_refused_before_training(tmp_path: Path, kwargs: dict, match: str) -> None:
    data = _dataset(tmp_path / "data", n=4)
    with pytest.raises(ConfigError, match=match):
        run_benchmark(data, out=tmp_path / "bench", **kwargs)
    assert not (tmp_path / "bench" / "runs").exists()


def test_cli_set_option_must_be_a_train_option(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data", n=4)
    result = runner.invoke(app, ["benchmark", "--data", str(data), "--models", "small_cnn",
                                 "--out", str(tmp_path / "b"), "--set", "batch_sise=8"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "Did you mean 'batch_size'" in str(result.exception)
