"""The Predictor: decisions, tiling of large images, segmenter blending, records, policies."""

from __future__ import annotations

import csv
import json
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError
from flawscope.inference.predictor import DecisionPolicy, ImageItem, Predictor, TilingPolicy
from flawscope.inference.records import PredictionWriter, prediction_columns, write_predictions
from flawscope.models.base import ModelConfig


class BrightnessBackend:
    """A stand-in network: image logit = 20 × (max normalised pixel - 1); mask logits = 10 × (x - 1).

    A tile holding a bright spot (normalised > 1) gets P(defect) near 1, a dim one near 0, so where the
    Predictor looks is easy to check.
    """

    def __init__(self, task: str = "classify", size: int = 16, resize: bool = False,
                 classes: tuple[str, ...] = ("ok", "defect")) -> None:
        pre = PreprocessConfig(input_size=(size, size), resize=resize, mean=(0.0,), std=(0.5,))
        defective = tuple(c for c in classes if c != "ok")
        self.config = ModelConfig(name="brightness", task=task, preprocess=pre, class_names=classes,
                                  defective_classes=defective, threshold=0.5)
        self.model_id = "brightness@test"
        self.batches: list[int] = []

    def run(self, batch: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        x = torch.as_tensor(batch)
        assert tuple(x.shape[-2:]) == self.config.preprocess.input_size  # always at the input size
        self.batches.append(x.shape[0])
        peak = x.flatten(1).amax(1)
        k = len(self.config.class_names)
        logits = (20 * (peak - 1))[:, None] if k == 2 else torch.stack([peak * i for i in range(k)], 1)
        out = {"logits": logits.numpy()}
        if self.config.task == "segment":
            out["mask_logits"] = (10 * (x[:, :1] - 1)).numpy()
        return out


def _image(h: int, w: int, spot: tuple[int, int] | None = None) -> np.ndarray:
    img = np.full((1, h, w), 0.2, np.float32)
    if spot is not None:
        img[0, spot[0] : spot[0] + 3, spot[1] : spot[1] + 3] = 1.0
    return img


def test_patch_model_tiles_a_large_image_and_reports_the_worst_tile() -> None:
    backend = BrightnessBackend(size=16)
    predictor = Predictor(backend, batch_size=5, tiling=TilingPolicy(keep_tile_map=True))
    record = predictor.predict(_image(40, 70, spot=(30, 60)))
    assert record.decision == "defect" and record.score > 0.99 and not record.abstained
    top, left, h, w = record.tile
    assert top <= 30 and 33 <= top + h and left <= 60 and 63 <= left + w  # the tile holds the spot
    assert record.n_tiles == record.tile_map.size > 1
    assert record.tile_map.max() == pytest.approx(record.score)
    assert max(backend.batches) <= 5  # tiles go through in batches of at most batch_size
    clean = predictor.predict(_image(40, 70))
    assert clean.decision == "ok" and clean.score < 0.01


def test_image_of_input_size_is_one_pass_and_small_images_are_padded() -> None:
    predictor = Predictor(BrightnessBackend(size=16))
    one = predictor.predict(_image(16, 16, spot=(2, 2)))
    assert (one.n_tiles, one.tile) == (1, None) and one.decision == "defect"
    small = predictor.predict(_image(10, 12, spot=(2, 2)))
    assert (small.n_tiles, small.tile, small.decision) == (1, None, "defect")


def test_resize_model_sees_the_whole_image_once() -> None:
    backend = BrightnessBackend(size=16, resize=True)
    record = Predictor(backend).predict(_image(64, 48, spot=(10, 10)))
    assert record.n_tiles == 1 and record.tile is None and backend.batches == [1]


def test_segmenter_tiles_blend_to_the_full_size_map() -> None:
    predictor = Predictor(BrightnessBackend("segment", size=16), batch_size=3)
    image = _image(37, 51, spot=(20, 40))
    record = predictor.predict(image)
    expected = 1 / (1 + np.exp(-10 * (image[0] / 0.5 - 1)))  # each tile's map, blended: the same map
    assert record.mask_prob.shape == (37, 51)
    np.testing.assert_allclose(record.mask_prob, expected, atol=1e-5)
    assert len(record.flaws) == 1 and record.flaws[0].bbox == (40, 20, 43, 23)
    assert record.to_row()["n_flaws"] == 1


def test_many_images_share_batches_and_keep_their_order() -> None:
    backend = BrightnessBackend(size=16)
    predictor = Predictor(backend, batch_size=4)
    images = [_image(16, 16), _image(40, 40, spot=(30, 30)), _image(16, 16, spot=(1, 1)), _image(20, 16)]
    records = list(predictor.predict_many(ImageItem(im, path=f"im{i}") for i, im in enumerate(images)))
    assert [r.path for r in records] == ["im0", "im1", "im2", "im3"]
    assert [r.decision for r in records] == ["ok", "defect", "defect", "ok"]
    assert all(b == 4 for b in backend.batches[:-1])


def test_decision_policy_band_and_two_policies_on_one_model() -> None:
    policy = DecisionPolicy(threshold=0.6, reject_band=(0.3, 0.7))
    assert [policy.decide(p) for p in (0.1, 0.3, 0.65, 0.71)] == ["ok", "unsure", "unsure", "defect"]
    predictor = Predictor(BrightnessBackend(size=16))
    strict = predictor.with_policy(threshold=1e-6)
    dim = _image(16, 16)
    a, b = predictor.predict(dim), strict.predict(dim)
    assert a.score == b.score and (a.decision, b.decision) == ("ok", "defect")
    assert predictor.policy.threshold == 0.5  # the first policy is untouched
    banded = predictor.with_policy(reject_band=(0.0, 0.2))
    record = banded.predict(dim)
    assert record.decision == "unsure" and record.abstained and record.to_row()["abstained"] == 1
    with pytest.raises(ConfigError, match="reject band"):
        DecisionPolicy(reject_band=(0.8, 0.2))
    with pytest.raises(ConfigError, match="threshold"):
        DecisionPolicy(threshold=1.5)


def test_a_model_without_ok_class_has_no_threshold() -> None:
    backend = BrightnessBackend(size=16, classes=("crack", "pore", "scratch"))
    predictor = Predictor(backend)
    assert predictor.policy.threshold is None
    record = predictor.predict(_image(16, 16, spot=(1, 1)))
    assert record.decision == "defect" and record.predicted == "scratch" and record.threshold is None
    assert sum(record.probs.values()) == pytest.approx(1.0)


def test_model_config_is_immutable() -> None:
    config = ModelConfig(name="x")
    with pytest.raises(FrozenInstanceError):
        config.threshold = 0.3  # type: ignore[misc]
    assert replace(config, threshold=0.3).threshold == 0.3 and config.threshold == 0.5


def test_records_write_csv_and_json_lines(tmp_path: Path) -> None:
    predictor = Predictor(BrightnessBackend("segment", size=16))
    records = [predictor.predict(_image(16, 16, spot=(4, 4)), path="a.png", label="defect", defective=1),
               predictor.predict(_image(16, 16), path="b.png")]
    columns = prediction_columns(predictor.config.class_names, segment=True)
    csv_path = write_predictions(tmp_path / "p.csv", records, columns)
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == columns
    assert [r["decision"] for r in rows] == ["defect", "ok"] and rows[0]["defective"] == "1"
    assert rows[1]["defective"] == "" and rows[0]["model_id"] == "brightness@test"
    jsonl = write_predictions(tmp_path / "p.jsonl", records, columns)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines[0]["flaws"][0]["area_px"] == 9 and lines[1]["defective"] is None
    with PredictionWriter(tmp_path / "p.csv", columns, append=True) as writer:  # a resumed run appends
        writer.write(records[0])
    assert len(csv_path.read_text().splitlines()) == 4


def test_bad_tiling_options_name_the_value() -> None:
    with pytest.raises(ConfigError, match="overlap 16"):
        Predictor(BrightnessBackend(size=16), tiling=TilingPolicy(overlap=16))
    with pytest.raises(ConfigError, match="batch_size"):
        Predictor(BrightnessBackend(size=16), batch_size=0)


def test_embed_many_gives_one_feature_row_per_image() -> None:
    from flawscope.data.config import PreprocessConfig as Pre
    from flawscope.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("small_cnn", preprocess=Pre(input_size=(16, 16), resize=False))
    predictor = Predictor(model, batch_size=2)
    feats = predictor.embed_many([_image(16, 16), _image(40, 40, spot=(3, 3))])  # the second is tiled
    assert feats.shape == (2, model.num_features) and np.isfinite(feats).all()
    with pytest.raises(ConfigError, match="no features"):
        Predictor(BrightnessBackend(size=16)).embed_many([_image(16, 16)])


def test_a_tiled_classifier_answers_where_with_flaw_regions() -> None:
    predictor = Predictor(BrightnessBackend(size=16))
    record = predictor.predict(_image(40, 70, spot=(30, 60)))
    assert len(record.flaws) == 1
    x1, y1, x2, y2 = record.flaws[0].bbox
    assert x1 <= 60 and 63 <= x2 and y1 <= 30 and 33 <= y2  # the region covers the spot
    assert (x2 - x1) < 70 and (y2 - y1) <= 40  # and not the whole image
    assert record.flaws[0].score == pytest.approx(record.score)
    assert record.to_json()["flaws"][0]["x1"] == x1
    assert predictor.predict(_image(40, 70)).flaws == []
    two = predictor.predict(_image(40, 70, spot=(2, 2)) + _image(40, 70, spot=(30, 60)) - 0.2)
    assert len(two.flaws) == 2
    assert Predictor(BrightnessBackend(size=16)).predict(_image(16, 16, spot=(4, 4))).flaws == []  # untiled


def test_test_time_flips_average_four_views_and_flip_maps_back() -> None:
    class Asymmetric(BrightnessBackend):
        def run(self, batch):  # noqa: ANN001, ANN201 - logit = brightness of the left half only
            x = torch.as_tensor(batch)
            out = {"logits": (x[..., : x.shape[-1] // 2].flatten(1).mean(1) * 10)[:, None].numpy()}
            if self.config.task == "segment":
                out["mask_logits"] = x[:, :1].numpy() * 0 + np.arange(x.shape[-1], dtype=np.float32)
            return out

    image = _image(16, 16)
    image[0, :, :8] = 0.9  # bright left half
    plain = Predictor(Asymmetric(size=16)).predict(image)
    flipped = Predictor(Asymmetric(size=16), tta=True).predict(image)
    assert flipped.score < plain.score  # two of the four views see the dim half
    seg = Predictor(Asymmetric(task="segment", size=16), tta=True).predict(image)
    # column-index maps averaged with their left-right mirrors (flipped back) are flat: 7.5 everywhere
    assert seg.mask_prob is not None and np.allclose(seg.mask_prob, 1 / (1 + np.exp(-7.5)), atol=1e-5)
