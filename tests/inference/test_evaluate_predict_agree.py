"""For the same model and images, `flawscope evaluate` and `flawscope predict` give the same per-image scores.

Both go through the one Predictor: a whole-image (resized) classifier, a patch classifier on images larger
than its input (tiles, image score = highest tile), and a segmenter (sliding window, image head).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from flawscope.data.config import PreprocessConfig
from flawscope.deploy.predict import predict_files
from flawscope.evaluation.evaluate import evaluate
from flawscope.models.checkpoint import save_model
from flawscope.models.registry import create_model
from helpers.datasets import blob_image, save

SHAPE = (40, 72)  # larger than the 32 px model input


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {Path(r["path"]).name: r for r in csv.DictReader(f)}


def _dataset(root: Path, masks: bool) -> Path:
    for i in range(4):
        image, mask = blob_image(i, defective=i % 2 == 1, size=SHAPE)
        if masks:
            save(root / "images" / f"im{i}.png", image)
            save(root / "masks" / f"im{i}.png", mask)
        else:
            save(root / ("defect" if i % 2 else "ok") / f"im{i}.png", image)
    return root


@pytest.mark.parametrize(("name", "resize"),
                         [("small_cnn", True), ("small_cnn", False), ("unet_small", False)])
def test_evaluate_and_predict_give_the_same_scores(tmp_path: Path, name: str, resize: bool) -> None:
    torch.manual_seed(0)
    model = create_model(name, preprocess=PreprocessConfig(input_size=(32, 32), resize=resize))
    model_file = save_model(model, tmp_path / "model.pt")
    segment = name == "unet_small"
    data = _dataset(tmp_path / "data", masks=segment)

    ev = evaluate(model_file, data=data, split="all", out=tmp_path / "eval", write_report=False)
    pr = predict_files(model_file, [data / "images"] if segment else [data], tmp_path / "pred")

    evaluated, predicted = _rows(ev.predictions_path), _rows(pr.predictions)
    assert set(evaluated) == set(predicted) == {f"im{i}.png" for i in range(4)}
    for key, row in evaluated.items():
        assert float(row["score"]) == pytest.approx(float(predicted[key]["score"]), abs=1e-6), key
        assert row["decision"] == predicted[key]["decision"] and row["tile"] == predicted[key]["tile"]
    if not resize:
        assert all(int(r["n_tiles"]) > 1 for r in evaluated.values())  # the large images were tiled
