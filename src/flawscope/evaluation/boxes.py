"""Flaw-level scores against ground-truth boxes: "is this casting defective, and where?".

A ground-truth box is found when a predicted flaw region's box overlaps it (positive-area intersection); a
predicted flaw that overlaps no ground-truth box is a false flaw. Predicted flaws come from the Predictor's
records: a segmenter's mask regions, or a tiled classifier's regions of tiles at or above the threshold.
Boxes of a sample that is a crop are moved into the crop's coordinates, and those left outside it dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flawscope.data.sample import Box, Sample
    from flawscope.inference.records import Flaw, Prediction

BoxXYXY = tuple[float, float, float, float]


def overlaps(a: BoxXYXY, b: BoxXYXY) -> bool:
    """True when two (x1, y1, x2, y2) boxes (exclusive ends) share a positive area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def sample_boxes(sample: Sample) -> list[BoxXYXY]:
    """A sample's ground-truth boxes in the scored image's pixels (its crop's, when it is one)."""
    boxes: Sequence[Box] = sample.boxes
    if sample.crop is None:
        return [(b.x1, b.y1, b.x2, b.y2) for b in boxes]
    top, left, h, w = sample.crop
    out = []
    for b in boxes:
        moved = (max(b.x1 - left, 0.0), max(b.y1 - top, 0.0), min(b.x2 - left, w), min(b.y2 - top, h))
        if moved[2] > moved[0] and moved[3] > moved[1]:
            out.append(moved)
    return out


def match_boxes(flaws: Sequence[Flaw], truth: Sequence[BoxXYXY]) -> tuple[int, int]:
    """(ground-truth boxes found, predicted flaws that overlap no ground-truth box) of one image."""
    predicted = [tuple(float(v) for v in f.bbox) for f in flaws]
    found = sum(any(overlaps(t, p) for p in predicted) for t in truth)
    false = sum(not any(overlaps(p, t) for t in truth) for p in predicted)
    return found, false


def box_metrics(samples: Sequence[Sample], records: Sequence[Prediction]) -> dict[str, Any]:
    """Box recall, false flaws per image and per defect-free image, over images with a known label.

    Returns {} when no sample has a box (the dataset is not box-annotated). An image with a known label and
    no box counts as defect-free: its flaws are all false.
    """
    if not any(s.boxes for s in samples):
        return {}
    n_boxes = found = false = flaws = 0
    n_images = n_ok = false_on_ok = 0
    for sample, record in zip(samples, records, strict=True):
        if record.defective < 0 and not sample.boxes:
            continue
        truth = sample_boxes(sample)
        hit, wrong = match_boxes(record.flaws, truth)
        n_images += 1
        n_boxes += len(truth)
        found += hit
        false += wrong
        flaws += len(record.flaws)
        if not truth:
            n_ok += 1
            false_on_ok += wrong
    return {
        "n_images": n_images, "n_boxes": n_boxes, "boxes_found": found,
        "box_recall": found / n_boxes if n_boxes else None,
        "false_flaws_per_image": false / n_images if n_images else None,
        "false_flaws_per_ok_image": false_on_ok / n_ok if n_ok else None,
        "flaws_per_image": flaws / n_images if n_images else None,
        "match_rule": "a box is found when a predicted flaw region's box overlaps it",
    }
