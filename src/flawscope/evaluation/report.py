"""One self-contained `report.html` per run: plain CSS, images embedded as base64 PNG, no external assets.

`Report` is the building block (sections appended in order); `write_classification_report` and
`write_segmentation_section` (images in memory) or `add_segmentation_results` (images shown on demand) fill
it for the two tasks. Every user string (titles, file names, captions, metric names) is HTML-escaped; only
`add_section`'s `html` argument is inserted as is.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from flawscope.evaluation.metrics import EvaluationError, binary_metrics, check_binary
from flawscope.inference.visual import overlay_mask, to_uint8_image

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 6px; vertical-align: top; text-align: center; }
figure img { max-width: 100%; border: 1px solid #ddd; image-rendering: pixelated; }
.gallery figure { width: 180px; } .gallery figure img { width: 176px; }
figcaption { font-size: 12px; color: #555; word-break: break-all; }
.meta { color: #777; font-size: 12px; }
"""

ImageLike = str | Path | np.ndarray | Any  # Any: a matplotlib Figure


def _png_bytes(image: ImageLike) -> tuple[bytes, str]:
    """(bytes, mime type) of an image path, array or matplotlib figure."""
    if hasattr(image, "savefig"):
        buf = io.BytesIO()
        image.savefig(buf, format="png")
        return buf.getvalue(), "image/png"
    from PIL import Image

    if isinstance(image, str | Path):
        path = Path(image)
        if not path.is_file():
            raise EvaluationError(f"image {path} for the report does not exist; check the path")
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(path.suffix.lower())
        if mime:
            return path.read_bytes(), mime
        with Image.open(path) as im:  # TIFF, BMP, ...: browsers cannot show them, re-encode as PNG
            image = np.asarray(im)
    buf = io.BytesIO()
    Image.fromarray(to_uint8_image(image)).save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def _img_tag(image: ImageLike, alt: str) -> str:
    data, mime = _png_bytes(image)
    return f'<img src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}" alt="{html.escape(alt)}">'


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{float(value):.4g}"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(_fmt_plain(v) for v in value))
    return html.escape(str(value))


def _fmt_plain(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{float(value):.4g}"
    return str(value)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class Report:
    """A self-contained HTML report assembled section by section.

    Example:
        rep = Report("weld run 3")
        rep.add_metrics_table("Test metrics", metrics).add_image("ROC", "roc.png")
        rep.save("runs/weld3/report.html")
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[str] = []

    def add_section(self, title: str, html_body: str) -> Report:
        """Append a section; `title` is escaped, `html_body` is trusted HTML inserted as is."""
        self.sections.append(f"<section>\n<h2>{html.escape(title)}</h2>\n{html_body}\n</section>")
        return self

    def add_text(self, text: str, title: str | None = None) -> Report:
        """Append escaped text as paragraphs (blank lines separate paragraphs)."""
        body = "\n".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())
        if title is None:
            self.sections.append(body)
            return self
        return self.add_section(title, body)

    def add_metrics_table(
        self, title: str, metrics: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
    ) -> Report:
        """Append a table: a dict becomes metric/value rows, a list of dicts one row per dict.

        Nested dicts are flattened with dotted keys; floats show 4 significant digits, NaN shows "n/a".
        """
        if isinstance(metrics, Mapping):
            flat = _flatten(metrics)
            rows = "\n".join(
                f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in flat.items()
            )
            table = f"<table>\n<tr><th>metric</th><th>value</th></tr>\n{rows}\n</table>"
        else:
            records = [_flatten(r) for r in metrics]
            cols = list(columns) if columns else list(dict.fromkeys(k for r in records for k in r))
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
            body = "\n".join(
                "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in records
            )
            table = f"<table>\n<tr>{head}</tr>\n{body}\n</table>"
        return self.add_section(title, table)

    def add_image(self, title: str, image: ImageLike, caption: str = "") -> Report:
        """Append one image (a file path, an array, or a matplotlib Figure), embedded as base64."""
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return self.add_section(title, f"<figure>{_img_tag(image, caption or title)}{cap}</figure>")

    def add_gallery(self, title: str, items: Sequence[tuple[ImageLike, str]], note: str = "") -> Report:
        """Append a grid of small captioned images, e.g. the misclassified items."""
        figs = "\n".join(
            f"<figure>{_img_tag(img, cap)}<figcaption>{html.escape(cap)}</figcaption></figure>"
            for img, cap in items
        )
        intro = f"<p>{html.escape(note)}</p>\n" if note else ""
        body = f'{intro}<div class="gallery">\n{figs or "<p>(none)</p>"}\n</div>'
        return self.add_section(title, body)

    def to_html(self) -> str:
        """The whole document as a string."""
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        sub = f"<p>{html.escape(self.subtitle)}</p>\n" if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{sub}<p class=\"meta\">written by flawscope, {stamp}</p>\n"
            + "\n".join(self.sections)
            + "\n</body>\n</html>\n"
        )

    def save(self, path: str | Path) -> Path:
        """Write the report (parent folders created) and return its path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_html(), encoding="utf-8")
        return out


def _default_loader(paths: Sequence[str | Path]) -> Callable[[int], np.ndarray]:
    def load(i: int) -> np.ndarray:
        from flawscope.data.io import load_image

        return load_image(paths[i])

    return load


_METRIC_ORDER = (
    "n", "threshold", "TP", "TN", "FP", "FN", "precision", "recall", "accuracy", "miss_rate",
    "false_alarm_rate", "false_positive_rate", "specificity", "f1", "balanced_accuracy", "roc_auc",
    "average_precision",
)


def write_classification_report(
    out_dir: str | Path,
    y_true: Any,
    scores: Any,
    threshold: float = 0.5,
    class_names: Sequence[str] = ("ok", "defect"),
    sample_paths: Sequence[str | Path] | None = None,
    images_loader: Callable[[int], np.ndarray] | None = None,
    val_info: Mapping[str, Any] | None = None,
    top_n: int = 8,
    title: str = "Classification report",
    extra_sections: Callable[[Report], Any] | None = None,
) -> Path:
    """Write `out_dir/report.html` for a defect-vs-ok classifier: metrics, curves, confusion matrix, errors.

    Args:
        out_dir: run folder; the report goes to out_dir/report.html, the plots also to out_dir/figures/.
        y_true: 1 for defective, 0 for ok.
        scores: defect scores (P(defective)).
        threshold: decision threshold (chosen on validation; see val_info).
        class_names: display names of the ok and the defective class.
        sample_paths: image file of each item (captions; and images when no loader is given).
        images_loader: loader(index) -> image array for the galleries; default loads sample_paths.
        val_info: where the threshold came from and other run facts (shown as a table).
        top_n: items per error gallery: the most confident misses and false alarms.
        title: report title.
        extra_sections: called with the report after the classifier sections, before it is saved, to append
            more (e.g. a segmenter's pixel metrics and overlays).

    Returns:
        Path of report.html.
    """
    from flawscope.evaluation.curves import plot_confusion_matrix, plot_curves

    y, s = check_binary(y_true, scores)
    names = list(class_names)
    if len(names) != 2:
        raise EvaluationError(f"class_names must name the ok and the defective class, got {names}")
    if sample_paths is not None and len(sample_paths) != y.size:
        raise EvaluationError(f"sample_paths has {len(sample_paths)} entries but there are {y.size} scores")
    out = Path(out_dir)
    figures = out / "figures"
    m = binary_metrics(y, s, threshold)
    subtitle = f"{names[1]} is the positive class; {y.size} items, {int(y.sum())} defective"
    rep = Report(title, subtitle=subtitle)
    rep.add_metrics_table("Metrics", {k: m[k] for k in _METRIC_ORDER})
    rep.add_text(
        "miss rate = FN / (FN + TP); false alarm rate = FP / (TP + FP) (SA-BCNN paper); "
        "false positive rate = FP / (FP + TN). n/a: undefined on this split (0/0)."
    )
    if val_info:
        rep.add_metrics_table("Threshold and run", val_info)
    if len(np.unique(y)) == 2:
        labels = {"pr": "Precision-recall", "roc": "ROC", "miss_false_alarm": "Miss rate vs false alarm rate",
                  "scores": "Score distribution"}
        for key, path in plot_curves(y, s, figures, threshold).items():
            rep.add_image(labels[key], path)
    else:
        rep.add_text("Curves need both defective and ok items; this split holds one class only.", "Curves")
    cm = np.array([[m["TN"], m["FP"]], [m["FN"], m["TP"]]])
    rep.add_image("Confusion matrix", plot_confusion_matrix(cm, names, figures / "confusion_matrix.png"))

    loader = images_loader or (_default_loader(sample_paths) if sample_paths is not None else None)
    name = (lambda i: Path(sample_paths[i]).name) if sample_paths is not None else (lambda i: f"item {i}")
    pred = s >= threshold
    fn_idx = np.flatnonzero((y == 1) & ~pred)
    fp_idx = np.flatnonzero((y == 0) & pred)
    fn_idx = fn_idx[np.argsort(s[fn_idx], kind="stable")][:top_n]  # lowest score = most confident miss
    fp_idx = fp_idx[np.argsort(-s[fp_idx], kind="stable")][:top_n]
    for label, idx, note in (
        ("False negatives (missed defects)", fn_idx, f"{m['FN']} in all; the {len(fn_idx)} lowest scores"),
        ("False positives (false alarms)", fp_idx, f"{m['FP']} in all; the {len(fp_idx)} highest scores"),
    ):
        if loader is None:
            rows = [{"item": name(int(i)), "score": float(s[i])} for i in idx]
            if rows:
                rep.add_metrics_table(label, rows, columns=["item", "score"])
            else:
                rep.add_text("(none)", label)
        else:
            shown = [(loader(int(i)), f"{name(int(i))} — score {s[i]:.3f}") for i in idx]
            rep.add_gallery(label, shown, note)
    if extra_sections is not None:
        extra_sections(rep)
    return rep.save(out / "report.html")


class SegmentationItem(NamedTuple):
    """One image to show in a segmentation report."""

    image: Any
    gt: Any
    pred: Any
    name: str = ""


def write_segmentation_section(
    report: Report,
    items: Sequence[SegmentationItem | tuple],
    n_show: int = 4,
    threshold: float = 0.5,
    title: str = "Segmentation",
) -> dict[str, Any]:
    """Add pixel and flaw-level metrics and GT-vs-prediction overlays of the best and worst images.

    For images already in memory; `add_segmentation_results` is the same section for a dataset scored one
    image at a time.

    Args:
        report: the report to extend.
        items: (image, gt_mask, pred_mask_or_probs, name) per image.
        n_show: overlays in each of the best and worst galleries.
        threshold: probability at which a predicted pixel counts as defect.
        title: section title prefix.

    Returns:
        The metrics shown: {"pixel": dataset pixel metrics, "flaw": flaw-level metrics}.
    """
    from flawscope.evaluation.segmentation import SegmentationScorer

    if not items:
        raise EvaluationError("write_segmentation_section got no items; pass (image, gt, pred, name) tuples")
    its = [SegmentationItem(*it) for it in items]
    scorer = SegmentationScorer(threshold=threshold)
    for it in its:
        scorer.update(it.pred, it.gt)
    metrics = scorer.compute()
    add_segmentation_results(report, metrics, scorer.per_image, its.__getitem__, n_show, threshold, title)
    return metrics


def add_segmentation_results(
    report: Report,
    metrics: Mapping[str, Any],
    per_image: Sequence[Mapping[str, float]],
    show: Callable[[int], SegmentationItem | tuple],
    n_show: int = 4,
    threshold: float = 0.5,
    title: str = "Segmentation",
) -> None:
    """Add the pixel and flaw-level metric tables and overlays of the best and worst images by IoU.

    Only the shown images are asked for (`show`), so a caller scoring a large set keeps per-image numbers
    (e.g. `SegmentationScorer`) and recomputes the few overlays instead of holding every image in memory.
    An image with no flaw in either mask counts as IoU 1 (agreement).

    Args:
        report: the report to extend.
        metrics: {"pixel": ..., "flaw": ...} (`SegmentationScorer.compute`).
        per_image: pixel metrics ("iou", "dice") of each scored image, in order.
        show: k -> (image, gt_mask, pred_mask_or_probs, name) of the k-th scored image.
        n_show: overlays in each of the best and worst galleries.
        threshold: probability at which a predicted pixel counts as defect.
        title: section title prefix.
    """
    from flawscope.evaluation.segmentation import binarize

    report.add_metrics_table(f"{title}: pixel metrics (pixel threshold {threshold:g})", metrics["pixel"])
    report.add_metrics_table(f"{title}: flaw-level metrics (8-connected regions)", metrics["flaw"])

    def agreement(d: Mapping[str, float], key: str) -> float:
        return 1.0 if math.isnan(d[key]) else float(d[key])

    ious = [agreement(d, "iou") for d in per_image]
    order = sorted(range(len(ious)), key=lambda k: (ious[k], k))
    worst = order[:min(n_show, (len(order) + 1) // 2)]  # a small set splits into both galleries
    best = [k for k in reversed(order) if k not in worst][:n_show]

    def gallery(ks: list[int]) -> list[tuple[np.ndarray, str]]:
        shown = []
        for k in ks:
            it = SegmentationItem(*show(k))
            caption = (f"{it.name or f'image {k}'} — IoU {ious[k]:.3f}, "
                       f"Dice {agreement(per_image[k], 'dice'):.3f}")
            shown.append((overlay_mask(it.image, it.gt, binarize(it.pred, threshold)), caption))
        return shown

    note = "green outline: ground truth; red: prediction"
    report.add_gallery(f"{title}: best images", gallery(best), note)
    report.add_gallery(f"{title}: worst images", gallery(worst), note)
