"""Classification metrics the way inspectors count them: defective is the positive class everywhere.

Counts come from scikit-learn's confusion matrix and ranking metrics (ROC AUC, average precision) from
scikit-learn; ratios are taken from the counts so that an undefined ratio (0/0) is NaN instead of an error
or a silent 0 — a test split without a single defect must not report a perfect recall.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from flawscope.errors import FlawscopeError


class EvaluationError(FlawscopeError):
    """Labels, scores or masks given to an evaluation function are malformed."""


def to_numpy(x: Any, name: str = "array") -> np.ndarray:
    """A numpy view of a list, numpy array or torch tensor (detached, on CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise EvaluationError(
            f"{name} cannot be read as an array ({err}); pass a list, numpy array or tensor"
        ) from None


def ratio(num: float, den: float) -> float:
    """num / den, or NaN when den is 0 (an undefined rate, not a perfect or a zero one)."""
    return float(num) / float(den) if den else math.nan


def check_binary(y_true: Any, scores: Any, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels int64 0/1, scores float64) as flat arrays, with errors that say what to fix."""
    y = to_numpy(y_true, "y_true").reshape(-1)
    s = to_numpy(scores, "scores").astype(np.float64).reshape(-1)
    if y.shape != s.shape:
        raise EvaluationError(
            f"y_true has {y.size} items but scores has {s.size}; pass one score per labelled item"
        )
    if y.size == 0 and not allow_empty:
        raise EvaluationError("y_true and scores are empty; the split to evaluate holds no labelled items")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise EvaluationError(
            f"y_true must be 0 (ok) or 1 (defective), got {np.unique(y[bad])[:5].tolist()}; "
            "drop unlabelled items (-1) or map class indices to defective 0/1 first"
        )
    if not np.isfinite(s).all():
        raise EvaluationError(
            f"scores hold {int((~np.isfinite(s)).sum())} NaN/inf values; check the model outputs"
        )
    return y.astype(np.int64), s


def _binary_from_arrays(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

    pred = (s >= threshold).astype(np.int64)
    # confusion_matrix refuses empty input; an empty subset (everything rejected) simply has no counts.
    cm = confusion_matrix(y, pred, labels=[0, 1]) if y.size else np.zeros((2, 2), dtype=int)
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    specificity = ratio(tn, tn + fp)
    both = len(np.unique(y)) == 2
    return {
        "TP": tp,
        "TN": tn,
        "FP": fp,
        "FN": fn,
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "accuracy": ratio(tp + tn, y.size),
        "miss_rate": ratio(fn, fn + tp),
        "false_alarm_rate": ratio(fp, tp + fp),
        "false_positive_rate": ratio(fp, fp + tn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (recall + specificity) / 2,  # NaN unless both classes are present
        # Ranking metrics need both classes; NaN says "not measurable on this split".
        "roc_auc": float(roc_auc_score(y, s)) if both else math.nan,
        "average_precision": float(average_precision_score(y, s)) if tp + fn > 0 else math.nan,
        "n": int(y.size),
        "threshold": float(threshold),
    }


def binary_metrics(y_true: Any, scores: Any, threshold: float = 0.5) -> dict[str, float]:
    """Defect-vs-ok metrics at one decision threshold (an item is called defective when score >= threshold).

    Rates follow the SA-BCNN paper: miss_rate = FN / (FN + TP) (1 - recall) and
    false_alarm_rate = FP / (TP + FP) (1 - precision: the share of alarms that are false). The textbook
    false positive rate FP / (FP + TN) is reported separately as false_positive_rate.

    Args:
        y_true: 1 for defective, 0 for ok, one per item.
        scores: defect score per item (probability, or any score ordered the same way).
        threshold: decision threshold on the scores, chosen on validation data.

    Returns:
        TP, TN, FP, FN, precision, recall, specificity, accuracy, miss_rate, false_alarm_rate,
        false_positive_rate, f1, balanced_accuracy, roc_auc, average_precision, n, threshold. A ratio whose
        denominator is 0 is NaN (e.g. recall on a split without defects); roc_auc is NaN unless both classes
        are present and average_precision is NaN without defects.

    Raises:
        EvaluationError: lengths differ, labels are not 0/1, scores are not finite, or no items are given.
    """
    if not math.isfinite(threshold):
        raise EvaluationError(f"threshold must be a finite number, got {threshold}")
    y, s = check_binary(y_true, scores)
    return _binary_from_arrays(y, s, threshold)


def multiclass_metrics(
    y_true: Any,
    probs: Any,
    class_names: Sequence[str],
    defective_classes: Iterable[str],
    threshold: float | None = 0.5,
) -> dict[str, Any]:
    """Per-class and defect-vs-ok metrics of a K-class classifier.

    Args:
        y_true: true class index per item.
        probs: (N, K) class probabilities (softmax outputs).
        class_names: the K class names, in index order.
        defective_classes: names of the classes that count as defective (every class, for a defect-type
            model such as NEU-DET's six).
        threshold: decision threshold on P(defective) = sum of the defective classes' probabilities; None
            when no class is defect-free (there is no defect-vs-ok decision).

    Returns:
        n, accuracy, balanced_accuracy (mean per-class recall), macro_auc (one-vs-rest ROC-AUC averaged over
        classes; NaN unless every class occurs), per_class {name: precision, recall, f1, support},
        macro_precision, macro_recall, macro_f1 (means over classes whose value is defined),
        confusion_matrix (rows = true, columns = predicted), class_names, and, when some class is
        defect-free and a threshold is given, `defect`: binary_metrics on P(defective).
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    names = list(class_names)
    y = to_numpy(y_true, "y_true").reshape(-1)
    p = to_numpy(probs, "probs").astype(np.float64)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise EvaluationError(
            f"probs has shape {tuple(p.shape)} but {len(names)} class names were given; "
            f"expected (N, {len(names)}) probabilities, one column per class"
        )
    if p.shape[0] != y.size or y.size == 0:
        raise EvaluationError(
            f"y_true has {y.size} items but probs has {p.shape[0]} rows; need one row per item"
        )
    if not np.isin(y, np.arange(len(names))).all():
        raise EvaluationError(
            f"y_true holds class indices {sorted(set(y.tolist()) - set(range(len(names))))[:5]} outside "
            f"0..{len(names) - 1} ({names}); drop unlabelled items (-1) first"
        )
    defective = list(defective_classes)
    unknown = [c for c in defective if c not in names]
    if unknown or not defective:
        raise EvaluationError(
            f"defective classes {unknown or defective} are not among the class names {names}; "
            "name at least one class that counts as defective"
        )
    labels = list(range(len(names)))
    pred = p.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=np.nan
    )
    def_idx = [names.index(c) for c in defective]
    with np.errstate(all="ignore"):
        macro = {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
                 for k, v in (("macro_precision", prec), ("macro_recall", rec), ("macro_f1", f1))}
    present = np.unique(y)
    macro_auc = math.nan
    if present.size == len(names):
        # Rows renormalised: float32 softmax outputs may sum to 1 +- 1e-7, which sklearn refuses.
        macro_auc = float(roc_auc_score(y, p / p.sum(axis=1, keepdims=True), multi_class="ovr",
                                        average="macro", labels=labels))
    out = {
        "n": int(y.size),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_auc": macro_auc,
        "per_class": {
            n: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                "support": int(support[i])}
            for i, n in enumerate(names)
        },
        **macro,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "class_names": names,
    }
    if threshold is not None and len(def_idx) < len(names):
        out["defect"] = binary_metrics(np.isin(y, def_idx).astype(int), p[:, def_idx].sum(axis=1), threshold)
    return out


def reject_metrics(
    y_true: Any, scores: Any, band: tuple[float, float], threshold: float = 0.5
) -> dict[str, Any]:
    """Metrics with an "I don't know" band: items scoring inside [lo, hi] go to a human.

    Args:
        y_true: 1 for defective, 0 for ok.
        scores: defect scores.
        band: (lo, hi); an item is rejected when lo <= score <= hi.
        threshold: decision threshold applied to the accepted items.

    Returns:
        band, coverage (share accepted), n, n_accepted, n_rejected, n_rejected_defective, and `accepted`:
        binary_metrics on the accepted items (counts 0 and ratios NaN when everything is rejected).
    """
    lo, hi = (float(v) for v in band)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise EvaluationError(f"reject band {band} is invalid; give (low, high) with low <= high")
    y, s = check_binary(y_true, scores)
    rejected = (s >= lo) & (s <= hi)
    accepted = ~rejected
    return {
        "band": (lo, hi),
        "coverage": ratio(accepted.sum(), y.size),
        "n": int(y.size),
        "n_accepted": int(accepted.sum()),
        "n_rejected": int(rejected.sum()),
        "n_rejected_defective": int(y[rejected].sum()),
        "accepted": _binary_from_arrays(y[accepted], s[accepted], threshold),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; 0 for one value) and count of the finite values."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def aggregate(metric_dicts: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and spread of the same metrics over k folds or seeds.

    Nested dicts are flattened with dotted keys ("defect.recall"); non-numeric values are left out. NaN values
    (a fold where the metric is undefined) are left out of that metric's mean; `n` says how many counted.

    Returns:
        {metric: {"mean", "std" (ddof=1, 0 for one fold), "n"}} for every metric present in any dict.
    """
    if not metric_dicts:
        raise EvaluationError("aggregate needs at least one metrics dict (one per fold or seed)")
    flat = [_flatten(d) for d in metric_dicts]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    out = {}
    for k in keys:
        m, s, n = mean_std([f.get(k, math.nan) for f in flat])
        out[k] = {"mean": m, "std": s, "n": n}
    return out
