"""`flawscope evaluate` on tiny trained runs: the documented metrics.json, report.html and predictions.csv."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.data.splits import split_groups
from flawscope.errors import ConfigError
from flawscope.evaluation.evaluate import METRICS_KEYS, evaluate
from flawscope.inference.records import prediction_columns
from flawscope.training.config import TrainConfig
from flawscope.training.run import train
from helpers.datasets import blob_image, save

runner = CliRunner()
SIZE = 32


def _train(root: Path, out: Path, **options: object) -> Path:
    settings: dict[str, object] = dict(
        data=str(root), input_size=SIZE, epochs=2, batch_size=8, out=str(out), name="run", patience=0,
        accelerator="cpu", devices="1", val_fraction=0.25, test_fraction=0.25, optimizer="adamw", lr=0.01,
    )
    cfg = TrainConfig(**{**settings, **options})  # type: ignore[arg-type]
    return train(cfg, progress=False).run_dir


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small_cnn trained 2 epochs on 20 folder-format images (10 ok, 10 with a blob)."""
    base = tmp_path_factory.mktemp("cls")
    for i in range(20):
        name = "defect" if i % 2 else "ok"
        save(base / "data" / name / f"{name}_{i:02d}.png", blob_image(i, i % 2 == 1, SIZE, blob=6)[0])
    return _train(base / "data", base / "runs", model="small_cnn")


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """unet_small trained on 16 manifest images of 48x48 with masks, resized to its 32x32 input."""
    base = tmp_path_factory.mktemp("seg")
    rows = []
    for i in range(16):
        img, mask = blob_image(100 + i, i % 2 == 0, 48, blob=6)
        save(base / "data" / "images" / f"im{i:02d}.png", img)
        save(base / "data" / "masks" / f"im{i:02d}.png", mask)
        rows.append([f"images/im{i:02d}.png", "defect" if mask.any() else "ok", f"masks/im{i:02d}.png",
                     int(mask.any())])
    with (base / "data" / "manifest.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "mask", "defective"], *rows])
    return _train(base / "data", base / "runs", model="unet_small", task="segment", epochs=1)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_run_folder_matches_the_runs_own_test_metrics(cls_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(cls_run), "--out", str(out)])

    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(METRICS_KEYS) <= set(metrics)
    run = json.loads((cls_run / "metrics.json").read_text())
    # Same model, same test part, same threshold (the one chosen on val): the same numbers as training's.
    assert metrics["threshold"] == pytest.approx(run["threshold"])
    assert metrics["threshold_source"].startswith("model")
    for key in ("TP", "TN", "FP", "FN", "roc_auc", "precision", "recall"):
        assert metrics["metrics"][key] == run["test"][key], key
    assert metrics["n_samples"] == run["split_sizes"]["test"] == metrics["metrics"]["n"]
    rows = _rows(out / "predictions.csv")
    assert list(rows[0]) == prediction_columns(["ok", "defect"], segment=False)
    assert len(rows) == metrics["n_samples"]
    assert sum(r["decision"] == "defect" and r["defective"] == "1" for r in rows) == metrics["metrics"]["TP"]
    report = (out / "report.html").read_text()
    assert "Confusion matrix" in report and "chosen on val" in report


def test_threshold_override_is_applied_and_reported(cls_run: Path, tmp_path: Path) -> None:
    result = evaluate(cls_run, split="all", out=tmp_path / "all", threshold=0.0)

    m = result.metrics
    assert m["threshold"] == 0.0 and m["threshold_source"].startswith("override")
    assert m["model_threshold"] != 0.0
    assert m["n_samples"] == 20
    assert (m["metrics"]["TP"], m["metrics"]["FP"], m["metrics"]["FN"], m["metrics"]["TN"]) == (10, 10, 0, 0)
    assert any("optimistic" in n for n in m["notes"])  # 'all' holds the training samples
    assert "override" in result.report_path.read_text()


def test_all_of_another_dataset_is_not_called_optimistic(cls_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    for i in range(6):  # new images: none of them was in the run's train or val part
        name = "defect" if i % 2 else "ok"
        save(other / name / f"new_{i:02d}.png", blob_image(500 + i, i % 2 == 1, SIZE, blob=6)[0])
    m = evaluate(cls_run, data=other, split="all", out=tmp_path / "ev", write_report=False).metrics
    assert m["n_samples"] == 6 and not any("optimistic" in n for n in m["notes"])


def test_model_file_without_run_folder_needs_an_explicit_split(cls_run: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone" / "model.pt"
    lone.parent.mkdir()
    shutil.copy(cls_run / "model.pt", lone)
    data = TrainConfig.from_yaml(cls_run / "config.yaml").data
    with pytest.raises(ConfigError, match="--split all"):
        evaluate(lone, data=data)
    with pytest.raises(ConfigError, match="pass --data"):
        evaluate(lone, split="all")
    result = evaluate(lone, data=data, split=str(cls_run / "split.csv"))
    assert result.metrics["n_samples"] == json.loads((cls_run / "metrics.json").read_text())["test"]["n"]


def test_checkpoint_gets_the_runs_threshold(cls_run: Path, tmp_path: Path) -> None:
    run = json.loads((cls_run / "metrics.json").read_text())
    result = evaluate(cls_run / "checkpoints" / "last.ckpt", out=tmp_path / "ck")
    # A .ckpt is saved before the threshold is chosen; the run's val-chosen one must be used, not 0.5.
    assert result.metrics["threshold"] == pytest.approx(run["threshold"])
    assert "metrics.json" in result.metrics["threshold_source"]


def test_segmenter_is_scored_at_native_resolution(seg_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(seg_run), "--out", str(out)])

    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert set(METRICS_KEYS) <= set(m) and m["task"] == "segment"
    pixel = m["pixel"]
    # Counts cover every pixel of the 48x48 images, not the 32x32 model input.
    assert pixel["tp"] + pixel["fp"] + pixel["fn"] + pixel["tn"] == m["n_samples"] * 48 * 48
    assert pixel["n_images"] == m["n_samples"]
    assert {"flaw_recall", "n_gt_flaws", "false_flaws_per_image"} <= set(m["flaw"])
    assert m["flaw"]["n_gt_flaws"] == sum(r["defective"] == "1" for r in _rows(out / "predictions.csv"))
    assert m["metrics"]["n"] == m["n_samples"]
    assert "iou" in _rows(out / "predictions.csv")[0]
    report = (out / "report.html").read_text()
    assert "Segmentation: pixel metrics" in report and "Segmentation: worst images" in report


def test_a_patch_model_is_evaluated_on_the_whole_images_of_its_test_groups(tmp_path: Path) -> None:
    """Trained on 32 px crops, evaluated on the 64×96 radiographs they came from: image AUC, box recall."""
    root = tmp_path / "data"
    patches, whole = [], []
    for i in range(24):
        defective = i % 2 == 1
        img, mask = blob_image(300 + i, defective, (64, 96), blob=6)
        name = f"images/im{i:02d}.png"
        save(root / name, img)
        group = f"part{i // 2}"  # two views per part
        ys, xs = np.nonzero(mask) if defective else (np.array([10]), np.array([10]))
        box = f"{xs.min()} {ys.min()} {xs.max() + 1} {ys.max() + 1} defect" if defective else ""
        whole.append([name, "defect" if defective else "ok", group, box])
        top, left = int(min(max(ys.min() - 13, 0), 32)), int(min(max(xs.min() - 13, 0), 64))
        patches.append([name, "defect" if defective else "ok", group, f"{top} {left} 32 32"])
        if defective:  # a defect-free crop of the same image, away from the blob
            free_top = 32 if ys.min() < 32 else 0
            free_left = 64 if xs.min() < 48 else 0
            patches.append([name, "ok", group, f"{free_top} {free_left} 32 32"])
    for file, header, rows in (("patches.csv", ["path", "label", "group", "crop"], patches),
                               ("whole.csv", ["path", "label", "group", "boxes"], whole)):
        with (root / file).open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    run = _train(root / "patches.csv", tmp_path / "runs", model="small_cnn", resize=False, epochs=3)
    result = evaluate(run, data=root / "whole.csv", split="test", write_report=False)
    test_groups = split_groups(run / "split.csv", ("test",))
    assert test_groups
    assert result.metrics["n_samples"] == 2 * len(test_groups)
    assert "images of the" in result.metrics["notes"][0]
    boxes = result.metrics["metrics"]["boxes"]
    assert boxes["n_images"] == result.metrics["n_samples"] and 0 <= boxes["box_recall"] <= 1
    assert boxes["n_boxes"] == sum(1 for r in whole if r[2] in test_groups and r[3])
    with pytest.raises(Exception, match="no sample of dataset .* is in the test part"):
        other = root / "other.csv"
        with other.open("w", newline="") as f:
            csv.writer(f).writerows([["path", "label", "group"], ["images/im00.png", "ok", "elsewhere"],
                                     ["images/im01.png", "defect", "elsewhere"]])
        evaluate(run, data=other, split="test", write_report=False)
