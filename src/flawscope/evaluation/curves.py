"""Threshold curves (scikit-learn) and their plots (matplotlib, Agg canvas: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flawscope.evaluation.metrics import EvaluationError, binary_metrics, check_binary, to_numpy


def _need_both_classes(y: np.ndarray, what: str) -> None:
    if len(np.unique(y)) < 2:
        raise EvaluationError(
            f"the {what} needs both defective and ok items, but all {y.size} items are "
            f"{'defective' if y[0] == 1 else 'ok'}; evaluate on a split holding both"
        )


def pr_curve(y_true: Any, scores: Any) -> dict[str, np.ndarray]:
    """Precision-recall curve: precision, recall, and thresholds (one fewer: the last point has none)."""
    from sklearn.metrics import precision_recall_curve

    y, s = check_binary(y_true, scores)
    if y.sum() == 0:
        raise EvaluationError("the PR curve needs at least one defective item; this split has none")
    precision, recall, thresholds = precision_recall_curve(y, s)
    return {"precision": precision, "recall": recall, "thresholds": thresholds}


def roc(y_true: Any, scores: Any) -> dict[str, np.ndarray]:
    """ROC curve: fpr = FP / (FP + TN), tpr = recall, thresholds (the first, inf, calls nothing defective)."""
    from sklearn.metrics import roc_curve

    y, s = check_binary(y_true, scores)
    _need_both_classes(y, "ROC curve")
    fpr, tpr, thresholds = roc_curve(y, s)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}


def miss_false_alarm_curve(y_true: Any, scores: Any) -> dict[str, np.ndarray]:
    """Miss rate vs false-alarm rate as the SA-BCNN paper defines them, one point per threshold.

    miss_rate = FN / (FN + TP) = 1 - recall; false_alarm_rate = FP / (TP + FP) = 1 - precision. Both come from
    scikit-learn's precision-recall curve, so the arrays align with its thresholds.
    """
    c = pr_curve(y_true, scores)
    return {
        "miss_rate": 1.0 - c["recall"][:-1],
        "false_alarm_rate": 1.0 - c["precision"][:-1],
        "thresholds": c["thresholds"],
    }


def _new_figure(size: tuple[float, float] = (4.5, 4.0)) -> Any:
    from matplotlib.figure import Figure

    # A bare Figure uses the Agg canvas: no pyplot global state, no display, safe in threads.
    return Figure(figsize=size, dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_curves(
    y_true: Any, scores: Any, out_dir: str | Path, threshold: float | None = None
) -> dict[str, Path]:
    """Write the PR, ROC, miss-rate/false-alarm and score-histogram plots as PNGs.

    Args:
        y_true: 1 for defective, 0 for ok (both classes needed).
        scores: defect scores.
        out_dir: folder for the PNGs (created).
        threshold: operating point to mark on each plot; None marks none.

    Returns:
        {"pr": path, "roc": path, "miss_false_alarm": path, "scores": path}.
    """
    y, s = check_binary(y_true, scores)
    _need_both_classes(y, "curve plots")
    out = Path(out_dir)
    op = binary_metrics(y, s, threshold) if threshold is not None else None
    ranking = binary_metrics(y, s)  # threshold-free AUC and AP for the legends
    paths: dict[str, Path] = {}

    pr = pr_curve(y, s)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.step(pr["recall"], pr["precision"], where="post", label=f"AP = {ranking['average_precision']:.3f}")
    if op:
        ax.plot(op["recall"], op["precision"], "o", color="C3", label=f"threshold {threshold:.3g}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="Precision-recall")
    ax.legend(loc="lower left")
    paths["pr"] = _save(fig, out / "pr_curve.png")

    rc = roc(y, s)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(rc["fpr"], rc["tpr"], label=f"AUC = {ranking['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    if op:
        ax.plot(op["false_positive_rate"], op["recall"], "o", color="C3", label=f"threshold {threshold:.3g}")
    ax.set(xlabel="false positive rate FP/(FP+TN)", ylabel="recall", xlim=(0, 1), ylim=(0, 1.02), title="ROC")
    ax.legend(loc="lower right")
    paths["roc"] = _save(fig, out / "roc_curve.png")

    mf = miss_false_alarm_curve(y, s)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(mf["false_alarm_rate"], mf["miss_rate"])  # not monotonic in x, so a line, not steps
    if op:
        ax.plot(op["false_alarm_rate"], op["miss_rate"], "o", color="C3", label=f"threshold {threshold:.3g}")
        ax.legend(loc="upper right")
    ax.set(xlabel="false alarm rate FP/(TP+FP)", ylabel="miss rate FN/(FN+TP)", xlim=(0, 1), ylim=(0, 1.02),
           title="Miss rate vs false alarm rate")
    paths["miss_false_alarm"] = _save(fig, out / "miss_false_alarm_curve.png")

    fig = _new_figure((5.0, 3.5))
    ax = fig.add_subplot()
    bins = np.linspace(min(s.min(), 0.0), max(s.max(), 1.0), 31)
    ax.hist(s[y == 0], bins=bins, alpha=0.6, label="ok", color="C0")
    ax.hist(s[y == 1], bins=bins, alpha=0.6, label="defective", color="C3")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set(xlabel="defect score", ylabel="items", title="Score distribution")
    ax.legend()
    paths["scores"] = _save(fig, out / "score_histogram.png")
    return paths


def plot_confusion_matrix(cm: Any, class_names: Sequence[str], path: str | Path) -> Path:
    """Write a confusion matrix (rows = true class, columns = predicted) as a PNG with counts in the cells."""
    from sklearn.metrics import ConfusionMatrixDisplay

    m = to_numpy(cm, "confusion matrix")
    names = list(class_names)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(names):
        raise EvaluationError(
            f"confusion matrix has shape {tuple(m.shape)} but {len(names)} class names were given; "
            "expected a square K x K matrix with one name per class"
        )
    side = 2.0 + 0.6 * len(names)
    fig = _new_figure((side + 1.0, side))
    ax = fig.add_subplot()
    fmt = "d" if np.issubdtype(m.dtype, np.integer) else ".2f"
    display = ConfusionMatrixDisplay(m, display_labels=names)
    display.plot(ax=ax, cmap="Blues", colorbar=False, values_format=fmt)
    ax.set_title("Confusion matrix")
    if len(names) > 4:
        ax.tick_params(axis="x", labelrotation=45)
    return _save(fig, Path(path))
