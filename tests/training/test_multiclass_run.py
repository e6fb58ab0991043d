"""Multi-class defect-type models (NEU-DET, seed 004's multi-class model): every class is a defect type.

Such a model trains, writes model.pt and metrics.json with per-class metrics, and evaluate and predict use
it; no threshold is chosen (there is no ok class). A multi-class set with an ok class whose val part cannot
choose a threshold is refused before training.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from flawscope.data.sources import load_dataset
from flawscope.data.splits import Split, check_split
from flawscope.deploy.predict import predict_files
from flawscope.errors import DatasetError
from flawscope.evaluation.evaluate import evaluate
from flawscope.training.config import TrainConfig
from flawscope.training.run import train
from helpers.datasets import make_neu_dataset, write_blob_folder

CLASSES = ("crazing", "inclusion", "scratches")


def test_defect_type_model_trains_and_reports_per_class(tmp_path: Path) -> None:
    data = make_neu_dataset(tmp_path / "neu", classes=CLASSES, train=6, val=3)
    cfg = TrainConfig(data=str(data), model="small_cnn", input_size=32, epochs=1, batch_size=4, lr=1e-2,
                      optimizer="adamw", class_weights="balanced", out=str(tmp_path / "runs"), name="neu",
                      patience=0, accelerator="cpu", devices=1, test_fraction=0.34)
    result = train(cfg, progress=False)

    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["threshold"] is None and metrics["defective_classes"] == list(CLASSES)
    test = metrics["test"]
    assert set(test["per_class"]) == set(CLASSES)
    assert len(test["confusion_matrix"]) == 3 and "balanced_accuracy" in test and "macro_auc" in test
    assert "defect" not in test  # no defect-vs-ok decision without an ok class
    assert (result.run_dir / "model.pt").is_file() and (result.run_dir / "report.html").is_file()

    ev = evaluate(result.run_dir, split="val", write_report=True)
    assert ev.metrics["threshold"] is None and set(ev.metrics["metrics"]["per_class"]) == set(CLASSES)
    images = sorted((data / "validation" / "images").rglob("*.jpg"))
    pred = predict_files(result.run_dir, images, tmp_path / "pred")
    with pred.predictions.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["decision"] for r in rows} == {"defect"} and {r["predicted"] for r in rows} <= set(CLASSES)


def test_multiclass_with_ok_class_needs_ok_and_defects_in_val(tmp_path: Path) -> None:
    data = write_blob_folder(tmp_path / "blobs", n_per_class=4, classes=("ok", "crack", "pore"))
    index = load_dataset(data)
    by_class = {c: [i for i, s in enumerate(index.samples) if s.label == c] for c in index.classes}
    val = by_class["crack"][:2] + by_class["pore"][:2]  # no ok sample: no threshold can be chosen
    train_part = sorted(set(range(len(index.samples))) - set(val))
    with pytest.raises(DatasetError, match="val.*no ok sample.*threshold"):
        check_split(index, Split(train_part, val, [], 0, "test"), by_group=False)
