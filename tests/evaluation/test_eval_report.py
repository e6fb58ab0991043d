"""The HTML report: self-contained, valid nesting, metric values shown, user strings escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from flawscope.errors import FlawscopeError
from flawscope.evaluation.report import (
    Report,
    SegmentationItem,
    add_segmentation_results,
    write_classification_report,
    write_segmentation_section,
)
from flawscope.inference.visual import overlay_mask

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Nesting(HTMLParser):
    """Checks that every non-void element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _assert_valid(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    parser = _Nesting()
    parser.feed(text)
    assert parser.errors == [] and parser.stack == []
    assert "<link" not in text and not re.search(r'src="(?!data:)', text)  # nothing external


# 4 defective, 6 ok; at 0.5: TP 3, FN 1 (0.3), FP 1 (0.7), TN 5.
Y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
S = [0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05]


def test_classification_report(tmp_path: Path) -> None:
    paths = [f"part_{i}.png" for i in range(10)]
    paths[4] = "<script>alert(1).png"  # the false positive
    loaded = []

    def loader(i: int) -> np.ndarray:
        loaded.append(i)
        return np.random.default_rng(i).random((1, 32, 32), dtype=np.float32)

    out = write_classification_report(
        tmp_path / "run", Y, S, threshold=0.5, sample_paths=paths, images_loader=loader,
        val_info={"threshold chosen on": "val", "method": "f1"},
    )
    assert out == tmp_path / "run" / "report.html"
    text = out.read_text(encoding="utf-8")
    _assert_valid(text)
    assert "<script>" not in text and "&lt;script&gt;alert(1).png" in text
    assert "<td>TP</td><td>3</td>" in text and "<td>false_alarm_rate</td><td>0.25</td>" in text
    assert "<td>false_positive_rate</td><td>0.1667</td>" in text
    # 4 curves + confusion matrix + 1 miss + 1 false alarm.
    assert text.count('src="data:image/png;base64,') == 7
    assert sorted(loaded) == [3, 4]
    assert "part_3.png — score 0.300" in text and "threshold chosen on" in text
    assert (tmp_path / "run" / "figures" / "roc_curve.png").is_file()


def test_classification_report_single_class_without_images(tmp_path: Path) -> None:
    out = write_classification_report(tmp_path, [0, 0, 0], [0.1, 0.7, 0.2], threshold=0.5)
    text = out.read_text(encoding="utf-8")
    _assert_valid(text)
    assert "one class only" in text and "item 1" in text


def test_report_api(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    png = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    rep = Report("Run <1> & co")
    rep.add_text("first\n\nsecond <b>")
    folds = [{"model": "sa_bcnn", "acc": 0.91234}, {"model": "bcnn", "acc": float("nan")}]
    rep.add_metrics_table("Folds", folds)
    rep.add_image("Figure", fig, caption="a fig").add_image("File", png)
    rep.add_gallery("Gallery", [(np.ones((16, 16, 3), np.uint16) * 40000, "16-bit rgb"), (png, "path")])
    rep.add_section("Raw", "<p id='raw'>kept</p>")
    text = rep.save(tmp_path / "r.html").read_text(encoding="utf-8")
    _assert_valid(text)
    assert "<title>Run &lt;1&gt; &amp; co</title>" in text and "second &lt;b&gt;" in text
    assert "<td>0.9123</td>" in text and "<td>n/a</td>" in text and "<p id='raw'>kept</p>" in text
    assert text.count("data:image/png;base64,") == 4
    with pytest.raises(FlawscopeError, match="does not exist"):
        rep.add_image("missing", tmp_path / "nope.png")


def test_overlay_mask_colours() -> None:
    img = np.full((10, 10), 0.5, np.float32)
    gt = np.zeros((10, 10), bool)
    gt[2:7, 2:7] = True
    pred = np.zeros((10, 10), bool)
    pred[4, 4] = True
    rgb = overlay_mask(img, gt, pred)
    assert rgb.shape == (10, 10, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[2, 2]) == (0, 255, 0)  # GT outline
    assert tuple(rgb[3, 3]) == (128, 128, 128)  # GT interior left as is
    assert rgb[4, 4, 0] > 150 and rgb[4, 4, 1] < 100  # prediction in red
    assert tuple(rgb[9, 9]) == (128, 128, 128)
    with pytest.raises(FlawscopeError, match="must match"):
        overlay_mask(img, np.zeros((5, 5), bool))


def test_segmentation_section(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = []
    for k in range(4):
        gt = np.zeros((16, 16), bool)
        gt[4:10, 4:10] = True
        pred = np.zeros((16, 16), np.float32)
        pred[4 : 10 - k, 4:10] = 0.9  # image k loses k rows of the flaw
        items.append((rng.random((16, 16)), gt, pred, f"img{k}"))
    rep = Report("seg")
    metrics = write_segmentation_section(rep, items, n_show=2)
    assert metrics["pixel"]["n_images"] == 4 and metrics["flaw"]["flaw_recall"] == 1.0
    assert metrics["pixel"]["iou"] == pytest.approx((36 + 30 + 24 + 18) / (4 * 36))
    text = rep.save(tmp_path / "s.html").read_text(encoding="utf-8")
    _assert_valid(text)
    best, worst = text.split("best images")[1].split("worst images")
    assert "img0 — IoU 1.000" in best and "img3" in worst and "img0" not in worst


def test_segmentation_results_load_only_the_shown_images(tmp_path: Path) -> None:
    from flawscope.evaluation.segmentation import SegmentationScorer

    gt = np.zeros((16, 16), bool)
    gt[4:10, 4:10] = True
    scorer = SegmentationScorer()
    preds = []
    for k in range(10):  # image k loses k rows of the flaw (k = 6.. miss it): IoU falls with k
        pred = np.zeros((16, 16), bool)
        pred[4 : max(10 - k, 4), 4:10] = True
        preds.append(pred)
        scorer.update(pred, gt)
    asked: list[int] = []

    def show(k: int) -> SegmentationItem:
        asked.append(k)
        return SegmentationItem(np.full((16, 16), 0.5), gt, preds[k], f"img{k}")

    rep = Report("seg")
    add_segmentation_results(rep, scorer.compute(), scorer.per_image, show, n_show=2, title="Test split")
    assert sorted(asked) == [0, 1, 6, 7]  # two best, two worst (ties by position); the rest never loaded
    text = rep.save(tmp_path / "s.html").read_text(encoding="utf-8")
    _assert_valid(text)
    best, worst = text.split("Test split: best images")[1].split("Test split: worst images")
    assert "img0 — IoU 1.000, Dice 1.000" in best and "img6 — IoU 0.000, Dice 0.000" in worst
    assert "<td>flaw_recall</td><td>0.6</td>" in text and "<td>false_flaws_per_image</td><td>0</td>" in text
    # A set smaller than two galleries is split between them rather than all shown as "worst".
    rep = Report("small")
    add_segmentation_results(rep, scorer.compute(), scorer.per_image[:3], show, n_show=4)
    best, worst = rep.to_html().split("Segmentation: best images")[1].split("Segmentation: worst images")
    assert best.count("<figure>") == 1 and worst.count("<figure>") == 2
