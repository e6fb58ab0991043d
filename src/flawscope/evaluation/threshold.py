"""Choosing the decision threshold: on validation data, then applied unchanged to the test data."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from flawscope.errors import ConfigError
from flawscope.evaluation.metrics import EvaluationError, check_binary

ThresholdMethod = Literal["f1", "miss_rate", "youden"]


def choose_threshold(
    y_true: Any, scores: Any, method: ThresholdMethod = "f1", target: float | None = None
) -> float:
    """The decision threshold (defective when score >= threshold) picked on a validation split.

    Choose it on validation data and apply it unchanged to the test split; choosing on the test split
    reports an optimistic score. The candidates are the observed scores (scikit-learn's curve thresholds).

    Args:
        y_true: 1 for defective, 0 for ok (validation split).
        scores: defect scores of the same items.
        method: "f1" (default): the threshold with the best F1; "miss_rate": the highest threshold whose
            miss rate FN / (FN + TP) is <= target (fewest false alarms under a miss budget); "youden": the
            threshold maximising TPR - FPR.
        target: the miss-rate budget in [0, 1) for method="miss_rate".

    Raises:
        EvaluationError: the labels hold a single class (no threshold can be chosen).
        ConfigError: unknown method or a missing/invalid target.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    if method not in ("f1", "miss_rate", "youden"):
        raise ConfigError(f"threshold method {method!r} is unknown; use one of f1, miss_rate, youden")
    if method == "miss_rate" and (target is None or not 0 <= target < 1):
        raise ConfigError(
            f"method='miss_rate' needs target in [0, 1) (the largest acceptable miss rate, e.g. 0.01), "
            f"got {target}"
        )
    y, s = check_binary(y_true, scores)
    if len(np.unique(y)) < 2:
        only = "defective" if y[0] == 1 else "ok"
        raise EvaluationError(
            f"cannot choose a threshold: all {y.size} validation items are {only}; "
            "the validation split needs both defective and ok items (use a larger or stratified split)"
        )
    if method == "f1":
        precision, recall, thresholds = precision_recall_curve(y, s)
        # The last (precision=1, recall=0) point has no threshold.
        p, r = precision[:-1], recall[:-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        # Ties: prefer the lowest threshold, i.e. fewer misses at the same F1.
        best = np.flatnonzero(f1 == f1.max())
        return float(thresholds[best].min())
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # the first point (threshold=inf) predicts nothing defective
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    if method == "youden":
        j = tpr - fpr
        return float(thresholds[np.flatnonzero(j == j.max())].max())
    ok = (1.0 - tpr) <= target + 1e-12
    # The lowest observed score gives recall 1, so `ok` always holds at least one candidate.
    return float(thresholds[ok].max())
