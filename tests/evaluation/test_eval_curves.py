"""Curves agree with binary_metrics; plots are written as non-empty PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flawscope.errors import FlawscopeError
from flawscope.evaluation.curves import (
    miss_false_alarm_curve,
    plot_confusion_matrix,
    plot_curves,
    pr_curve,
    roc,
)
from flawscope.evaluation.metrics import binary_metrics

RNG = np.random.default_rng(1)
Y = RNG.integers(0, 2, 60)
S = np.clip(0.35 * Y + RNG.normal(0.35, 0.2, 60), 0, 1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_miss_false_alarm_curve_matches_binary_metrics() -> None:
    c = miss_false_alarm_curve(Y, S)
    assert len(c["miss_rate"]) == len(c["false_alarm_rate"]) == len(c["thresholds"])
    for i in range(0, len(c["thresholds"]), 5):
        m = binary_metrics(Y, S, c["thresholds"][i])
        assert c["miss_rate"][i] == pytest.approx(m["miss_rate"])
        assert c["false_alarm_rate"][i] == pytest.approx(m["false_alarm_rate"])


def test_pr_and_roc_curves() -> None:
    p = pr_curve(Y, S)
    assert p["precision"].shape == p["recall"].shape and p["recall"][0] == 1.0
    r = roc(Y, S)
    assert r["fpr"][0] == 0 and r["tpr"][-1] == 1
    with pytest.raises(FlawscopeError, match="both"):
        roc([0, 0], [0.1, 0.2])


def test_plot_curves_writes_pngs(tmp_path: Path) -> None:
    paths = plot_curves(Y, S, tmp_path / "figs", threshold=0.5)
    assert set(paths) == {"pr", "roc", "miss_false_alarm", "scores"}
    for path in paths.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000


def test_plot_confusion_matrix(tmp_path: Path) -> None:
    path = plot_confusion_matrix([[5, 1], [2, 7]], ["ok", "defect"], tmp_path / "cm.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(FlawscopeError, match="3 class names"):
        plot_confusion_matrix([[5, 1], [2, 7]], ["a", "b", "c"], tmp_path / "x.png")
