"""Classification metrics: hand-computed counts, NaN cases, multiclass, reject band, aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flawscope.errors import FlawscopeError
from flawscope.evaluation.metrics import aggregate, binary_metrics, multiclass_metrics, reject_metrics

# 4 defective, 6 ok. At 0.5: TP=3 (0.9, 0.8, 0.6), FN=1 (0.3), FP=1 (0.7), TN=5.
Y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
S = [0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05]


def test_binary_metrics_hand_computed() -> None:
    m = binary_metrics(Y, S, threshold=0.5)
    assert (m["TP"], m["TN"], m["FP"], m["FN"]) == (3, 5, 1, 1)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["miss_rate"] == pytest.approx(0.25)
    assert m["false_alarm_rate"] == pytest.approx(1 / 4)  # FP / (TP + FP), the paper's definition
    assert m["false_positive_rate"] == pytest.approx(1 / 6)  # FP / (FP + TN)
    assert m["f1"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 5 / 6) / 2)
    assert m["roc_auc"] == pytest.approx(21 / 24)  # 21 of 24 (defective, ok) pairs ranked right
    assert 0 < m["average_precision"] <= 1
    assert m["n"] == 10 and m["threshold"] == 0.5


def test_threshold_is_inclusive_and_tensors_accepted() -> None:
    m = binary_metrics(torch.tensor(Y), torch.tensor(S), threshold=0.6)
    assert (m["TP"], m["FP"]) == (3, 1)  # score 0.6 counts as defective
    assert binary_metrics(Y, S, threshold=0.61)["TP"] == 2


def test_undefined_ratios_are_nan() -> None:
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])  # no defects, none predicted
    assert (m["TP"], m["TN"], m["FP"], m["FN"]) == (0, 3, 0, 0)
    for key in ("precision", "recall", "miss_rate", "false_alarm_rate", "f1", "roc_auc", "average_precision",
                "balanced_accuracy"):
        assert math.isnan(m[key]), key
    assert m["accuracy"] == 1.0 and m["false_positive_rate"] == 0.0
    m = binary_metrics([1, 1], [0.9, 0.2])
    assert math.isnan(m["false_positive_rate"]) and m["recall"] == 0.5 and math.isnan(m["roc_auc"])


@pytest.mark.parametrize(
    ("y", "s", "needle"),
    [([1, 0], [0.5], "2 items"), ([1, 2], [0.1, 0.2], r"0 \(ok\) or 1"), ([1, 0], [0.1, float("nan")], "NaN"),
     ([], [], "empty")],
)
def test_bad_input_raises_clear_error(y: list, s: list, needle: str) -> None:
    with pytest.raises(FlawscopeError, match=needle):
        binary_metrics(y, s)


def test_multiclass_metrics() -> None:
    names = ["ok", "crack", "pore"]
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8],
                  [0.9, 0.05, 0.05]])
    m = multiclass_metrics(y, p, names, ["crack", "pore"])
    assert m["accuracy"] == pytest.approx(3 / 6)  # predicted 0, 1, 1, 2, 2, 0
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert m["per_class"]["crack"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["macro_recall"] == pytest.approx(0.5)
    d = m["defect"]  # P(defective) = 0.2, 0.7, 0.9, 0.8, 0.9, 0.1
    assert (d["TP"], d["FN"], d["FP"], d["TN"]) == (3, 1, 1, 1)
    with pytest.raises(FlawscopeError, match="scratch"):
        multiclass_metrics(y, p, names, ["scratch"])
    with pytest.raises(FlawscopeError, match=r"\(N, 3\)"):
        multiclass_metrics(y, p[:, :2], names, ["crack"])


def test_reject_band() -> None:
    r = reject_metrics(Y, S, band=(0.3, 0.7))
    # Rejected: 0.6, 0.3, 0.7, 0.4 (two defective); accepted: 0.9, 0.8 defective, 0.2, 0.1, 0.1, 0.05 ok.
    assert (r["n_rejected"], r["n_accepted"], r["n_rejected_defective"]) == (4, 6, 2)
    assert r["coverage"] == pytest.approx(0.6)
    acc = r["accepted"]
    assert (acc["TP"], acc["TN"], acc["FP"], acc["FN"]) == (2, 4, 0, 0)
    everything = reject_metrics(Y, S, band=(0.0, 1.0))
    assert everything["coverage"] == 0 and math.isnan(everything["accepted"]["accuracy"])
    with pytest.raises(FlawscopeError, match="band"):
        reject_metrics(Y, S, band=(0.7, 0.3))


def test_aggregate_mean_std() -> None:
    folds = [{"acc": 0.8, "d": {"recall": 1.0}, "name": "x"}, {"acc": 0.6, "d": {"recall": float("nan")}}]
    agg = aggregate(folds)
    assert agg["acc"]["mean"] == pytest.approx(0.7)
    assert agg["acc"]["std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert agg["d.recall"] == {"mean": 1.0, "std": 0.0, "n": 1}  # the NaN fold is left out and counted
    assert "name" not in agg
    with pytest.raises(FlawscopeError):
        aggregate([])
