"""Box-level scores: a ground-truth box is found when a predicted flaw region overlaps it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flawscope.data.sample import Box, Sample
from flawscope.evaluation.boxes import box_metrics, match_boxes, overlaps, sample_boxes
from flawscope.inference.records import Flaw, Prediction


def _flaw(x1: int, y1: int, x2: int, y2: int) -> Flaw:
    return Flaw(area_px=(x2 - x1) * (y2 - y1), bbox=(x1, y1, x2, y2), equivalent_diameter_px=1.0,
                centroid=((x1 + x2) / 2, (y1 + y2) / 2))


def _record(flaws: list[Flaw], defective: int) -> Prediction:
    return Prediction(path="x.png", score=0.9, decision="defect", abstained=False, predicted="defect",
                      probs={"ok": 0.1, "defect": 0.9}, threshold=0.5, defective=defective, flaws=flaws,
                      n_tiles=12)


def test_overlap_needs_a_shared_area() -> None:
    assert overlaps((0, 0, 10, 10), (9, 9, 20, 20))
    assert not overlaps((0, 0, 10, 10), (10, 0, 20, 10))  # touching edges share no area


def test_box_recall_and_false_flaws() -> None:
    defect = Sample(Path("a.png"), label="defect", defective=True,
                    boxes=(Box(10, 10, 20, 20), Box(50, 50, 60, 60)))
    ok = Sample(Path("b.png"), label="ok", defective=False)
    records = [_record([_flaw(15, 15, 30, 30), _flaw(80, 0, 90, 10)], 1), _record([_flaw(0, 0, 5, 5)], 0)]
    m = box_metrics([defect, ok], records)
    assert m["n_boxes"] == 2 and m["boxes_found"] == 1 and m["box_recall"] == 0.5
    assert m["false_flaws_per_image"] == 1.0  # one false flaw on each image
    assert m["false_flaws_per_ok_image"] == 1.0 and m["flaws_per_image"] == 1.5
    assert match_boxes([], [(0, 0, 1, 1)]) == (0, 0)
    assert box_metrics([ok], [_record([], 0)]) == {}  # no boxes anywhere: not a box-annotated dataset


def test_boxes_of_a_crop_move_into_its_pixels() -> None:
    sample = Sample(Path("a.png"), boxes=(Box(40, 30, 50, 36), Box(0, 0, 5, 5)), crop=(20, 30, 32, 32))
    assert sample_boxes(sample) == [(10.0, 10.0, 20.0, 16.0)]  # the second lies outside the crop


@pytest.mark.parametrize("flaws, recall", [([], 0.0), ([(0, 0, 64, 64)], 1.0)])
def test_no_flaw_finds_nothing_and_a_covering_flaw_finds_all(flaws: list, recall: float) -> None:
    boxes = (Box(1, 1, 4, 4), Box(30, 30, 40, 40))
    sample = Sample(Path("a.png"), label="defect", defective=True, boxes=boxes)
    m = box_metrics([sample], [_record([_flaw(*f) for f in flaws], 1)])
    assert m["box_recall"] == recall and m["false_flaws_per_image"] == 0
