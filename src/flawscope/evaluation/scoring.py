"""Scoring dataset samples through the Predictor, and the metrics and report of one split.

Training (its val and test splits), `flawscope evaluate` and the benchmark all score samples here, so they
agree: each sample is decoded at native resolution (its crop), predicted by `flawscope.inference.predictor`
(whose tiling policy covers images larger than the model input), and compared with its label and mask.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from flawscope.data.cache import DecodeCache
    from flawscope.data.sample import Sample
    from flawscope.evaluation.segmentation import SegmentationScorer
    from flawscope.inference.predictor import Predictor
    from flawscope.inference.records import Prediction
    from flawscope.models.base import ModelConfig


@dataclass
class ScoredSplit:
    """The records of a split's samples and their segmentation scores.

    Attributes:
        samples: the scored samples, in order.
        records: one Prediction per sample, in order (probability maps dropped: numbers only).
        segmentation: pixel and flaw-level scores of the samples with a ground-truth mask, or None.
        masked: positions (in `samples`) of those samples, in the scorer's order.
    """

    samples: list[Sample]
    records: list[Prediction]
    segmentation: SegmentationScorer | None = None
    masked: list[int] = field(default_factory=list)

    def labels(self) -> np.ndarray:
        """True 1 / 0 / -1 (unknown) per record."""
        return np.array([r.defective for r in self.records], dtype=np.int64)

    def scores(self) -> np.ndarray:
        """P(defect) per record."""
        return np.array([r.score for r in self.records], dtype=np.float64)

    def ious(self) -> list[float | None]:
        """Per-record pixel IoU (None without a mask, or when both masks are empty)."""
        out: list[float | None] = [None] * len(self.records)
        if self.segmentation is not None:
            for k, pos in enumerate(self.masked):
                iou = self.segmentation.per_image[k]["iou"]
                out[pos] = None if math.isnan(iou) else float(iou)
        return out


def sample_flag(sample: Sample, defective_classes: frozenset[str] | Sequence[str],
                gt: np.ndarray | None = None) -> int:
    """1 / 0 / -1 (unknown); an image known only by its mask is defective when the mask has defect pixels."""
    from flawscope.data.splits import is_defective

    flag = is_defective(sample, frozenset(defective_classes))
    if flag is None and gt is not None:
        flag = bool(gt.any())
    return -1 if flag is None else int(flag)


def predict_samples(
    predictor: Predictor, samples: Sequence[Sample], cache: DecodeCache | None = None
) -> Iterator[tuple[Sample, Prediction, np.ndarray | None]]:
    """(sample, record, ground-truth mask or None) for each sample, in order, at native resolution."""
    from flawscope.inference.predictor import ImageItem

    defective = frozenset(predictor.config.defective_classes)
    truths: deque[np.ndarray | None] = deque()

    def items() -> Iterator[ImageItem]:
        for s in samples:
            image, gt = predictor.preprocessor.load_sample(s, cache)
            truths.append(gt)
            yield ImageItem(image, path=str(s.image), crop=s.crop, label=s.label or "",
                            defective=sample_flag(s, defective, gt))

    for sample, record in zip(samples, predictor.predict_many(items()), strict=True):
        yield sample, record, truths.popleft()


def score_samples(predictor: Predictor, samples: Sequence[Sample], cache: DecodeCache | None = None
                  ) -> ScoredSplit:
    """Predict every sample and score segmenters' masks against the ground truth (numbers only kept)."""
    from flawscope.evaluation.segmentation import SegmentationScorer

    scored = ScoredSplit(list(samples), [])
    scorer = SegmentationScorer(threshold=predictor.policy.pixel_threshold)
    for i, (_, record, gt) in enumerate(predict_samples(predictor, samples, cache)):
        if record.mask_prob is not None and gt is not None:
            scorer.update(record.mask, gt)
            scored.masked.append(i)
        record.mask_prob = None  # keep numbers, not maps
        scored.records.append(record)
    if len(scorer):
        scored.segmentation = scorer
    return scored


def has_ok_class(config: ModelConfig) -> bool:
    """True when some class is defect-free, so there is a defect-vs-ok decision to threshold."""
    return any(c not in config.defective_classes for c in config.class_names)


def split_metrics(scored: ScoredSplit, config: ModelConfig, threshold: float | None) -> dict[str, Any]:
    """Metrics of one split: binary (or multi-class) on the records, plus a segmenter's "pixel" and "flaw".

    A multi-class model is scored per class (precision/recall/F1, balanced accuracy, macro AUC, confusion
    matrix) and, when it has an ok class, defect vs ok at `threshold`; a binary model defect vs ok.
    """
    from flawscope.evaluation.metrics import binary_metrics, multiclass_metrics

    classes = list(config.class_names)
    out: dict[str, Any] = {}
    if len(classes) > 2 and config.task == "classify":
        labelled = [r for r in scored.records if r.label in classes]
        if labelled:
            y = np.array([classes.index(r.label) for r in labelled])
            probs = np.array([[r.probs[c] for c in classes] for r in labelled])
            out = multiclass_metrics(y, probs, classes, config.defective_classes, threshold)
    else:
        y, s = scored.labels(), scored.scores()
        known = y >= 0
        if known.any():
            out = binary_metrics(y[known], s[known], 0.5 if threshold is None else threshold)
    if scored.segmentation is not None:
        out.update(scored.segmentation.compute())  # "pixel" and "flaw"
    if config.task == "segment" or any(r.n_tiles > 1 for r in scored.records):  # records that localise
        from flawscope.evaluation.boxes import box_metrics

        if boxes := box_metrics(scored.samples, scored.records):
            out["boxes"] = boxes
    return out


def reject_section(scored: ScoredSplit, threshold: float | None, band: tuple[float, float] | None
                   ) -> dict[str, Any]:
    """{"reject": metrics of the accepted items} when a reject band is set and items are labelled."""
    from flawscope.evaluation.metrics import reject_metrics

    y, s = scored.labels(), scored.scores()
    known = y >= 0
    if band is None or threshold is None or not known.any():
        return {}
    return {"reject": reject_metrics(y[known], s[known], band, threshold)}


def binary_display_names(config: ModelConfig) -> tuple[str, str]:
    """Display names of the ok and the defective side for a report."""
    classes, defective = list(config.class_names), list(config.defective_classes)
    ok = [c for c in classes if c not in defective]
    return (ok[0] if len(ok) == 1 else "ok", defective[0] if len(defective) == 1 else "defect")


def write_split_report(
    out_dir: Path, scored: ScoredSplit, predictor: Predictor, metrics: dict[str, Any], info: dict[str, Any],
    title: str, cache: DecodeCache | None = None, n_show: int = 4,
) -> Path:
    """report.html of one scored split: classifier sections, plus a segmenter's pixel section and overlays.

    Only the few shown images are decoded (and, for segmenters, predicted) again.
    """
    from flawscope.evaluation.report import (
        Report,
        SegmentationItem,
        add_segmentation_results,
        write_classification_report,
    )

    config = predictor.config
    y, s = scored.labels(), scored.scores()
    known = np.flatnonzero(y >= 0)
    threshold = predictor.policy.threshold

    def image_of(k: int) -> np.ndarray:
        return predictor.preprocessor.load_sample(scored.samples[int(known[k])], cache)[0]

    extra: Callable[[Report], None] | None = None
    if scored.segmentation is not None:
        seg = scored.segmentation

        def show(k: int) -> SegmentationItem:
            sample = scored.samples[scored.masked[k]]
            image, gt = predictor.preprocessor.load_sample(sample, cache)
            record = predictor.predict(image, path=str(sample.image))
            return SegmentationItem(image, gt, record.mask, sample.image.name)

        def extra(rep: Report) -> None:
            add_segmentation_results(rep, seg.compute(), seg.per_image, show, n_show,
                                     predictor.policy.pixel_threshold)

    two_classes = known.size and len(np.unique(y[known])) == 2 and threshold is not None
    if not two_classes:
        rep = Report(title, "no defect-vs-ok decision to chart on this split" if known.size
                     else "no labelled item: nothing to score")
        rep.add_metrics_table("Run", info)
        flat = {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}
        if flat:
            rep.add_metrics_table("Metrics", flat)
        if "per_class" in metrics:
            rows = [{"class": c, **v} for c, v in metrics["per_class"].items()]
            columns = ["class", "precision", "recall", "f1", "support"]
            rep.add_metrics_table("Per class", rows, columns=columns)
        if extra is not None:
            extra(rep)
        return rep.save(out_dir / "report.html")
    return write_classification_report(
        out_dir, y[known], s[known], threshold=threshold, class_names=binary_display_names(config),
        sample_paths=[str(scored.samples[int(i)].image) for i in known], images_loader=image_of,
        val_info=info, title=title, extra_sections=extra,
    )


def json_safe(value: Any) -> Any:
    """NaN/inf become null (and numpy scalars plain numbers) so metrics.json stays strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
