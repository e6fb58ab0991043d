"""Pixel metrics on hand examples, flaw matching counts, flaw descriptions, image-level scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flawscope.errors import FlawscopeError
from flawscope.evaluation.segmentation import (
    PixelMetricAccumulator,
    match_flaws,
    pixel_counts,
    summarize_flaw_matches,
)
from flawscope.inference.records import find_flaws

GT = np.zeros((4, 4), bool)
GT[:2, :2] = True
PRED = np.zeros((4, 4), bool)
PRED[0, 0] = PRED[1, 0] = PRED[1, 1] = PRED[1, 2] = True  # tp 3, fp 1, fn 1, tn 11


def test_pixel_metrics_hand_example() -> None:
    assert pixel_counts(PRED, GT) == (3, 1, 1, 11)
    acc = PixelMetricAccumulator()
    acc.update(PRED, GT)
    m = acc.compute()
    assert m["iou"] == pytest.approx(3 / 5)
    assert m["background_iou"] == pytest.approx(11 / 13)
    assert m["miou"] == pytest.approx((3 / 5 + 11 / 13) / 2)
    assert m["dice"] == pytest.approx(6 / 8)
    assert (m["precision"], m["recall"], m["accuracy"]) == pytest.approx((0.75, 0.75, 14 / 16))


def test_pixel_counts_agree_with_sklearn() -> None:
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(3)
    pred, gt = rng.random((2, 13, 17)) > 0.6
    tn, fp, fn, tp = confusion_matrix(gt.ravel(), pred.ravel(), labels=[False, True]).ravel()
    assert pixel_counts(pred, gt) == (tp, fp, fn, tn)


def test_accumulator_sums_counts_over_images_and_batches() -> None:
    acc = PixelMetricAccumulator(threshold=0.5)
    acc.update(PRED.astype(np.float32) * 0.9, GT.astype(np.uint8) * 255)  # probabilities, 0/255 mask
    empty = np.zeros((4, 4), bool)
    batch = torch.from_numpy(np.stack([empty, GT]))[:, None]  # (B, 1, H, W)
    acc.update(batch, batch)
    m = acc.compute()
    assert m["n_images"] == 3
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3 + 4, 1, 1, 11 + 16 + 12)
    assert m["iou"] == pytest.approx(7 / 9)
    assert m["mean_image_iou"] == pytest.approx((0.6 + 1.0) / 2)  # the empty image's IoU is undefined
    assert math.isnan(acc.per_image[1]["iou"])
    with pytest.raises(FlawscopeError, match="must match"):
        acc.update(PRED, np.zeros((5, 4), bool))
    acc.reset()
    with pytest.raises(FlawscopeError, match="update"):
        acc.compute()


def test_match_flaws_counts() -> None:
    gt = np.zeros((20, 20), bool)
    gt[2:5, 2:5] = True  # flaw 1: found
    gt[10, 10] = gt[11, 11] = True  # flaw 2: diagonal neighbours are one flaw (8-connectivity), found
    gt[15:18, 2:4] = True  # flaw 3: missed
    pred = np.zeros((20, 20), bool)
    pred[4:7, 4:7] = True  # overlaps flaw 1 by one pixel
    pred[11, 11] = True
    pred[0:2, 15:19] = True  # false flaw
    m = match_flaws(pred, gt)
    assert (m.n_gt, m.n_found, m.n_pred, m.n_false) == (3, 2, 3, 1)
    assert m.gt_found == (True, True, False) and m.recall == pytest.approx(2 / 3)
    strict = match_flaws(pred, gt, min_overlap_pixels=2)
    assert (strict.n_found, strict.n_false) == (0, 3)
    s = summarize_flaw_matches([m, match_flaws(np.zeros_like(gt), np.zeros_like(gt))])
    assert s["flaw_recall"] == pytest.approx(2 / 3) and s["false_flaws_per_image"] == 0.5


def test_find_flaws_disc_and_mm() -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    r = 10
    mask = (yy - 30) ** 2 + (xx - 25) ** 2 <= r**2
    mask[55:58, 50:60] = True  # a 3 x 10 bar
    prob = mask * 0.9
    prob[30, 25] = 0.99
    flaws = find_flaws(mask, pixel_size_mm=0.1, prob=prob)
    assert len(flaws) == 2
    disc, bar = flaws  # largest first
    assert disc.equivalent_diameter_px == pytest.approx(2 * r, abs=0.3)
    assert disc.equivalent_diameter_mm == pytest.approx(disc.equivalent_diameter_px * 0.1)
    assert disc.area_mm2 == pytest.approx(disc.area_px * 0.01)
    assert disc.centroid == pytest.approx((25.0, 30.0))
    assert disc.score == pytest.approx(0.99) and bar.score == pytest.approx(0.9)
    assert bar.bbox == (50, 55, 60, 58) and bar.area_px == 30
    assert find_flaws(mask)[0].area_mm2 is None and find_flaws(mask)[0].score is None
    assert find_flaws(np.zeros((8, 8))) == []


@pytest.mark.real_data
def test_real_weld_mask(shared_data) -> None:
    """GDXray weld W0002 mask: a mask scored against itself is perfect, and its flaws are described."""
    from PIL import Image

    path = shared_data / "gdxray-welds" / "W0002" / "W0002_0001.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    mask = np.asarray(Image.open(path)).astype(bool)
    flaws = find_flaws(mask, pixel_size_mm=0.1)
    assert len(flaws) >= 1 and sum(f.area_px for f in flaws) == mask.sum()
    m = match_flaws(mask, mask)
    assert m.n_gt == len(flaws) and m.recall == 1.0 and m.n_false == 0
    acc = PixelMetricAccumulator()
    acc.update(mask, mask)
    assert acc.compute()["miou"] == 1.0
