"""Segmentation scores: pixel metrics from tp/fp/fn/tn counts, and flaw-level (connected region) metrics.

The same functions score a segmenter's masks and an explanation heatmap turned into a mask. A mask may be
bool, an integer label image (non-zero = defect, e.g. 0/255 PNGs) or float probabilities (>= threshold =
defect).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flawscope.evaluation.metrics import EvaluationError, ratio, to_numpy
from flawscope.inference.records import EIGHT_CONNECTED as _EIGHT


def binarize(mask: Any, threshold: float = 0.5, name: str = "mask") -> np.ndarray:
    """A bool array from a bool, integer (non-zero = defect) or float (>= threshold) mask."""
    m = to_numpy(mask, name)
    if m.dtype == np.bool_:
        return m
    if np.issubdtype(m.dtype, np.floating):
        return m >= threshold
    if np.issubdtype(m.dtype, np.integer):
        return m != 0
    raise EvaluationError(f"{name} has dtype {m.dtype}; give a bool, integer or float mask")


def _as_2d(mask: Any, name: str, threshold: float) -> np.ndarray:
    m = binarize(mask, threshold, name)
    m = np.squeeze(m) if m.ndim > 2 else m
    if m.ndim != 2:
        raise EvaluationError(f"{name} has shape {m.shape}; expected one (H, W) mask (or (1, H, W))")
    return m


def pixel_metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Pixel metrics of the defect class from summed counts; undefined ratios (0/0) are NaN.

    iou is the defect class's IoU; miou is the mean of the defect IoU and the background IoU
    tn / (tn + fp + fn) (seed 001's definition); dice equals the pixel F1.
    """
    iou, bg_iou = ratio(tp, tp + fp + fn), ratio(tn, tn + fp + fn)
    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
        "iou": iou,
        "background_iou": bg_iou,
        "miou": (iou + bg_iou) / 2,
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "tn": int(tn),
    }


def pixel_counts(pred_mask: Any, gt_mask: Any, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) pixel counts of one mask or a batch of masks.

    Counted with numpy on bool masks: the counts are exact integers either way, and torchmetrics'
    binary_stat_scores would import torchvision (5-10 s) for a CLI that only scores masks. The tests check
    these counts against scikit-learn's confusion matrix.
    """
    pred = np.squeeze(binarize(pred_mask, threshold, "pred_mask"))
    gt = np.squeeze(binarize(gt_mask, threshold, "gt_mask"))
    if pred.shape != gt.shape:
        raise EvaluationError(
            f"pred_mask has shape {pred.shape} but gt_mask has {gt.shape}; masks must match pixel for pixel "
            "(resize the prediction to the ground-truth size first)"
        )
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    return tp, fp, fn, int(pred.size) - tp - fp - fn


@dataclass
class PixelMetricAccumulator:
    """Pixel metrics over a dataset: counts summed over all images (micro average), then turned into ratios.

    Example:
        acc = PixelMetricAccumulator()
        for pred, gt in pairs:
            acc.update(pred, gt)
        acc.compute()["miou"]

    Attributes:
        threshold: probability at which a float prediction counts as defect.
        per_image: one dict of pixel metrics per updated image, in order (for best/worst listings).
    """

    threshold: float = 0.5
    per_image: list[dict[str, float]] = field(default_factory=list)

    def update(self, pred_mask: Any, gt_mask: Any) -> None:
        """Add one mask (H, W) or (1, H, W), or a batch (B, H, W) / (B, 1, H, W)."""
        pred = binarize(pred_mask, self.threshold, "pred_mask")
        gt = binarize(gt_mask, self.threshold, "gt_mask")
        if pred.shape != gt.shape:
            raise EvaluationError(
                f"pred_mask has shape {pred.shape} but gt_mask has {gt.shape}; "
                "masks must match pixel for pixel"
            )
        if pred.ndim == 2:  # one image; (1, H, W) and (B, H, W) are already batches
            pred, gt = pred[None], gt[None]
        elif pred.ndim == 4 and pred.shape[1] == 1:
            pred, gt = pred[:, 0], gt[:, 0]
        elif pred.ndim != 3:
            raise EvaluationError(
                f"masks have shape {pred.shape}; expected (H, W), (B, H, W) or (B, 1, H, W)"
            )
        for p, g in zip(pred, gt, strict=True):
            self.per_image.append(pixel_metrics_from_counts(*pixel_counts(p, g)))

    def reset(self) -> None:
        """Forget every image."""
        self.per_image.clear()

    def compute(self) -> dict[str, float]:
        """Dataset metrics from the summed counts, plus n_images and mean_image_iou (mean of defined IoUs)."""
        if not self.per_image:
            raise EvaluationError("no masks were added; call update(pred_mask, gt_mask) before compute()")
        sums = {k: sum(d[k] for d in self.per_image) for k in ("tp", "fp", "fn", "tn")}
        out = pixel_metrics_from_counts(**sums)
        ious = [d["iou"] for d in self.per_image if not math.isnan(d["iou"])]
        out["mean_image_iou"] = float(np.mean(ious)) if ious else math.nan
        out["n_images"] = len(self.per_image)
        return out


@dataclass(frozen=True)
class FlawMatch:
    """Flaw-level result of one image.

    Attributes:
        n_gt: connected ground-truth flaws.
        n_found: GT flaws overlapped by the prediction (>= min_overlap_pixels pixels).
        n_pred: connected predicted regions.
        n_false: predicted regions overlapping no GT flaw (fewer than min_overlap_pixels pixels).
        gt_found: per GT flaw (label 1..n_gt), whether it was found.
        pred_false: per predicted region (label 1..n_pred), whether it is a false flaw.
    """

    n_gt: int
    n_found: int
    n_pred: int
    n_false: int
    gt_found: tuple[bool, ...] = ()
    pred_false: tuple[bool, ...] = ()

    @property
    def recall(self) -> float:
        """Share of GT flaws found; NaN for an image without flaws."""
        return ratio(self.n_found, self.n_gt)


def match_flaws(
    pred_mask: Any, gt_mask: Any, min_overlap_pixels: int = 1, threshold: float = 0.5
) -> FlawMatch:
    """Match connected flaws (8-connectivity, scipy.ndimage.label) of a prediction and its ground truth.

    A GT flaw counts as found when predicted pixels cover at least `min_overlap_pixels` of it; a predicted
    region is a false flaw when it covers fewer than `min_overlap_pixels` GT pixels (by default: it touches
    no GT flaw).
    """
    from scipy import ndimage

    if min_overlap_pixels < 1:
        raise EvaluationError(f"min_overlap_pixels must be >= 1, got {min_overlap_pixels}")
    pred = _as_2d(pred_mask, "pred_mask", threshold)
    gt = _as_2d(gt_mask, "gt_mask", threshold)
    if pred.shape != gt.shape:
        raise EvaluationError(f"pred_mask is {pred.shape} but gt_mask is {gt.shape}; masks must match")
    gt_lab, n_gt = ndimage.label(gt, structure=_EIGHT)
    pred_lab, n_pred = ndimage.label(pred, structure=_EIGHT)
    # Overlap of each GT flaw with predicted pixels, and of each predicted region with GT pixels.
    gt_cover = np.bincount(gt_lab[pred], minlength=n_gt + 1)[1:]
    pred_cover = np.bincount(pred_lab[gt], minlength=n_pred + 1)[1:]
    found = gt_cover >= min_overlap_pixels
    false = pred_cover < min_overlap_pixels
    return FlawMatch(
        n_gt=int(n_gt), n_found=int(found.sum()), n_pred=int(n_pred), n_false=int(false.sum()),
        gt_found=tuple(bool(v) for v in found), pred_false=tuple(bool(v) for v in false),
    )


def summarize_flaw_matches(matches: Sequence[FlawMatch]) -> dict[str, float]:
    """Flaw recall over a dataset (found / all GT flaws) and false flaws per image."""
    if not matches:
        raise EvaluationError("no flaw matches given; run match_flaws on at least one image")
    n_gt = sum(m.n_gt for m in matches)
    n_found = sum(m.n_found for m in matches)
    n_false = sum(m.n_false for m in matches)
    return {
        "flaw_recall": ratio(n_found, n_gt),
        "n_gt_flaws": n_gt,
        "n_found_flaws": n_found,
        "n_false_flaws": n_false,
        "false_flaws_per_image": n_false / len(matches),
        "n_images": len(matches),
    }


@dataclass
class SegmentationScorer:
    """Pixel and flaw-level metrics of a dataset, scored one image at a time; keeps numbers, never masks.

    Example:
        scorer = SegmentationScorer()
        for pred, gt in pairs:
            scorer.update(pred, gt)
        scorer.compute()["flaw"]["flaw_recall"]

    Attributes:
        threshold: probability at which a float prediction counts as defect.
        pixel: the summed pixel counts; `pixel.per_image` holds each image's pixel metrics, in order.
        flaws: each image's FlawMatch, in order.
    """

    threshold: float = 0.5
    pixel: PixelMetricAccumulator = field(init=False)
    flaws: list[FlawMatch] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.pixel = PixelMetricAccumulator(threshold=self.threshold)

    def update(self, pred_mask: Any, gt_mask: Any) -> dict[str, float]:
        """Score one image, (H, W) or (1, H, W); returns its pixel metrics (iou, dice, counts, ...)."""
        pred = _as_2d(pred_mask, "pred_mask", self.threshold)
        gt = _as_2d(gt_mask, "gt_mask", self.threshold)
        self.pixel.update(pred, gt)
        self.flaws.append(match_flaws(pred, gt))
        return self.pixel.per_image[-1]

    @property
    def per_image(self) -> list[dict[str, float]]:
        """Pixel metrics of each scored image, in order."""
        return self.pixel.per_image

    def __len__(self) -> int:
        return len(self.flaws)

    def compute(self) -> dict[str, dict[str, float]]:
        """{"pixel": PixelMetricAccumulator.compute(), "flaw": summarize_flaw_matches(flaws)}."""
        return {"pixel": self.pixel.compute(), "flaw": summarize_flaw_matches(self.flaws)}
