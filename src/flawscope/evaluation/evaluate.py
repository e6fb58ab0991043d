"""Evaluate a trained model on a dataset split: what `flawscope evaluate` runs, callable from Python.

The decision threshold is the model's own, chosen on validation data during training; it is never re-tuned
on the data being evaluated. An explicit `threshold` overrides it, and metrics.json and the report say so.

Classifiers are scored the way training scored its test split
(`flawscope.evaluation.predictions.predict_loader` on the model's evaluation transform). Segmenters are scored
at each image's own resolution: the probability map comes from `flawscope.deploy.predict.segment_image`
(sliding-window inference at the model's input size for patch models), then pixel metrics (counts summed over
images), flaw-level metrics (connected regions) and image-level metrics (the model's image score) are
computed.

Output folder: metrics.json (keys in METRICS_KEYS, plus "pixel" and "flaw" for segmenters and "reject" when
the model has a reject band), report.html (+ figures/), predictions.csv (path, crop, label, defective,
score, decision; iou for segmenters).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flawscope.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from flawscope.data.sample import DatasetIndex, Sample
    from flawscope.models.base import FlawModel

SPLITS = ("test", "val", "all")
METRICS_KEYS = (
    "model", "task", "model_file", "run_dir", "data", "format", "split", "n_samples", "n_labelled",
    "classes", "defective_classes", "threshold", "threshold_source", "model_threshold", "notes", "metrics",
)
PREDICTION_COLUMNS = ("path", "crop", "label", "defective", "score", "decision")


@dataclass
class ModelSource:
    """Where a model came from: its file and, when it belongs to a run folder, that run's config and split.

    Attributes:
        model_file: model.pt or a Lightning checkpoint.
        run_dir: the run folder, or None for a lone model file.
        run_config: the run's config.yaml as a dict (empty without a run folder).
        split_file: the run's split.csv, or None.
    """

    model_file: Path
    run_dir: Path | None = None
    run_config: dict[str, Any] = field(default_factory=dict)
    split_file: Path | None = None


@dataclass
class EvaluationResult:
    """What `evaluate` wrote: metrics (the contents of metrics.json) and the paths of its files."""

    out_dir: Path
    metrics: dict[str, Any]
    metrics_path: Path
    report_path: Path | None
    predictions_path: Path


def resolve_source(source: str | Path) -> ModelSource:
    """Find the model file, run folder, config and split of a run folder, model.pt or checkpoint.

    A checkpoint in `<run>/checkpoints/` and a model.pt next to a config.yaml belong to that run.
    """
    import yaml

    from flawscope.deploy.predict import find_model_file

    model_file = find_model_file(source)
    parent = model_file.parent
    run_dir = parent.parent if parent.name == "checkpoints" else parent
    if not (run_dir / "config.yaml").is_file():
        return ModelSource(model_file)
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"run config {run_dir / 'config.yaml'} is not valid YAML ({err}); "
                          "pass --data") from None
    split = run_dir / "split.csv"
    return ModelSource(model_file, run_dir, config if isinstance(config, dict) else {},
                       split if split.is_file() else None)


def _load_index(src: ModelSource, model: FlawModel, data: str | Path | None, format: str | None,
                ok_classes: list[str] | None = None) -> DatasetIndex:
    from flawscope.data.sources import load_dataset

    run_data = src.run_config.get("data") or None
    if data is None and run_data is None:
        raise ConfigError(f"model {src.model_file} has no run folder naming its dataset; pass --data DIR")
    path = Path(data if data is not None else run_data)  # type: ignore[arg-type]
    if not path.exists():
        where = "--data" if data is not None else f"the run's config.yaml ({src.run_dir})"
        raise ConfigError(f"dataset {path} (from {where}) does not exist; "
                          "pass --data with the dataset folder")
    same = run_data is not None and (data is None or Path(data).resolve() == Path(run_data).resolve())
    fmt = format or (src.run_config.get("format", "auto") if same else "auto")
    index = load_dataset(path, format=fmt, on_bad_file=src.run_config.get("on_bad_file", "error"),
                         defective_classes=None if ok_classes else model.config.defective_classes,
                         ok_classes=ok_classes or None)
    names = list(model.config.class_names)
    unknown = sorted({s.label for s in index.samples if s.label} - set(names))
    if unknown and model.config.task == "classify":
        raise DatasetError(
            f"dataset {path} has labels {unknown} that model {model.config.name!r} does not know "
            f"(its classes: {names}); evaluate on a dataset with the model's classes"
        )
    index.classes = names  # the model's class order decides label indices
    return index


def _positions(index: DatasetIndex, split: str, src: ModelSource) -> tuple[list[int], str]:
    """Positions of the samples to evaluate and a description of where they came from."""
    from flawscope.data.splits import load_split

    if split == "all":
        return list(range(len(index.samples))), "all samples"
    if split in ("test", "val"):
        if src.split_file is not None:
            return load_split(index, src.split_file).part(split), f"{split} part of {src.split_file}"
        fixed = [i for i, s in enumerate(index.samples) if s.split == split]
        if fixed:
            return fixed, f"the dataset's own {split} part"
        raise ConfigError(
            f"model {src.model_file} comes without a run folder split.csv and dataset {index.root} fixes no "
            f"{split} part; pass --split all, or --split FILE.csv (a split written by a run)"
        )
    path = Path(split)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"--split {split!r} is not one of {', '.join(SPLITS)} nor a split .csv file")
    parts = load_split(index, path)
    if parts.test:
        return parts.test, f"test part of {path}"
    return sorted(parts.train + parts.val), f"every sample listed in {path}"


def _defective(sample: Sample, index: DatasetIndex, gt: np.ndarray | None = None) -> int:
    """1 / 0 / -1 (unknown); an image known only by its mask is defective when the mask has defect pixels."""
    from flawscope.data.splits import is_defective

    flag = is_defective(sample, index.defective_classes)
    if flag is None and gt is not None:
        flag = bool(gt.any())
    return -1 if flag is None else int(flag)


def evaluate(
    source: str | Path,
    data: str | Path | None = None,
    split: str = "test",
    out: str | Path | None = None,
    threshold: float | None = None,
    format: str | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    tile: int | None = None,
    overlap: int | None = None,
    write_report: bool = True,
    ok_classes: list[str] | None = None,
) -> EvaluationResult:
    """Evaluate a trained model and write metrics.json, report.html and predictions.csv.

    Args:
        source: a run folder (its model.pt, config.yaml data and split.csv are used), a model.pt or a
            Lightning checkpoint.
        data: dataset folder; default: the run's dataset.
        split: "test" or "val" (a part of the run's split.csv, or the dataset's own split), "all", or a
            split .csv file (its test part; every listed sample when it has none).
        out: output folder; default `<run>/eval-<split>` (or next to the model file).
        threshold: decision threshold overriding the model's own (recorded as an override).
        format: dataset format; default the run's (or auto-detection).
        batch_size: images per forward pass.
        device: "cpu", "cuda" or "auto".
        tile, overlap: sliding-window tile size and overlap for segmenters (default: the model's input
            size and a quarter tile).
        write_report: False skips report.html (e.g. inside a benchmark); report_path is then None.
        ok_classes: the dataset's defect-free classes (every other class is defective); default: the
            model's own defective classes decide.

    Raises:
        ConfigError / DatasetError: bad options, a dataset the split does not fit, labels the model lacks.
    """
    from flawscope.deploy.predict import _device, load_model
    from flawscope.evaluation.predictions import json_safe

    if threshold is not None and not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"threshold {threshold} must be a probability in [0, 1]")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    src = resolve_source(source)
    model = load_model(src.model_file)
    index = _load_index(src, model, data, format, ok_classes)
    positions, origin = _positions(index, split, src)
    if not positions:
        raise DatasetError(f"the {split} selection ({origin}) of dataset {index.root} is empty; pick another")
    split_name = split if split in SPLITS else Path(split).name
    if out is None:
        base = src.run_dir if src.run_dir is not None else src.model_file.parent
        out = base / f"eval-{Path(split_name).stem}"
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    cfg = model.config
    notes = [f"evaluated on {origin}"]
    own_source = _stored_threshold(src, model, notes)
    used = float(cfg.threshold if threshold is None else threshold)
    source_text = (own_source if threshold is None
                   else f"override (--threshold; the model's own is {cfg.threshold:.4g})")
    if threshold is not None:
        notes.append(f"threshold {used:.4g} set by the user instead of the model's {cfg.threshold:.4g}")
    if split == "val":
        notes.append("the threshold was chosen on this val split: these numbers are optimistic")
    if split == "all" and src.split_file is not None:
        notes.append("'all' includes the run's training and val samples: these numbers are optimistic")
    dev = _device(device)
    samples = [index.samples[i] for i in positions]
    if cfg.task == "segment":
        metrics, rows, report = _evaluate_segmenter(model, index, samples, used, batch_size, str(dev), tile,
                                                    overlap)
    else:
        metrics, rows, report = _evaluate_classifier(model, index, samples, used, batch_size, dev)

    result = {
        "model": cfg.name, "task": cfg.task, "model_file": str(src.model_file),
        "run_dir": str(src.run_dir) if src.run_dir else None, "data": str(index.root), "format": index.format,
        "split": split_name, "n_samples": len(samples), "n_labelled": sum(r["defective"] != "" for r in rows),
        "classes": list(cfg.class_names), "defective_classes": list(cfg.defective_classes),
        "threshold": used, "threshold_source": source_text, "model_threshold": float(cfg.threshold),
        "notes": notes, **metrics,
    }
    result = json_safe(result)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result, indent=2))
    columns = [*PREDICTION_COLUMNS, *(["iou"] if cfg.task == "segment" else []),
               *(["predicted"] if len(cfg.class_names) > 2 and cfg.task == "classify" else [])]
    predictions_path = out_dir / "predictions.csv"
    with predictions_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    info = {"threshold": used, "threshold source": source_text, "model": cfg.name,
            "model file": str(src.model_file), "data": str(index.root), "split": origin,
            "notes": "; ".join(notes)}
    report_path = report(out_dir, info) if write_report else None
    return EvaluationResult(out_dir, result, metrics_path, report_path, predictions_path)


def _stored_threshold(src: ModelSource, model: FlawModel, notes: list[str]) -> str:
    """Where the model's threshold came from (load_model gives a run's checkpoint the run's threshold)."""
    from flawscope.deploy.predict import checkpoint_threshold

    if src.model_file.suffix.lower() != ".ckpt":
        return "model (chosen on val during training)"
    threshold, best = checkpoint_threshold(src.model_file)
    if threshold is None:
        notes.append(f"checkpoint {src.model_file.name} holds no threshold chosen on val; "
                     f"{model.config.threshold:.4g} is a default — evaluate the run's model.pt or pass "
                     "--threshold")
        return "checkpoint default (not chosen on val)"
    if best is not None and best.resolve() != src.model_file.resolve():
        notes.append(f"the run's threshold was chosen on val for {best.name}, not for {src.model_file.name}")
    return "run's metrics.json (chosen on val during training)"


def _row(sample: Sample, score: float, label_flag: int, threshold: float, model: FlawModel) -> dict[str, Any]:
    from flawscope.deploy.predict import decide

    return {
        "path": str(sample.image), "crop": " ".join(map(str, sample.crop)) if sample.crop else "",
        "label": sample.label, "defective": "" if label_flag < 0 else label_flag, "score": round(score, 6),
        "decision": decide(score, threshold, model.config.reject_band),
    }


def _reject(y: np.ndarray, s: np.ndarray, threshold: float, model: FlawModel) -> dict[str, Any]:
    from flawscope.evaluation.metrics import reject_metrics

    band = model.config.reject_band
    return {"reject": reject_metrics(y, s, band, threshold)} if band is not None and y.size else {}


# -- classifiers ---------------------------------------------------------------------------------------------
def _evaluate_classifier(
    model: FlawModel, index: DatasetIndex, samples: list[Sample], threshold: float, batch_size: int,
    device: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    from torch.utils.data import DataLoader

    from flawscope.data.cache import DecodeCache
    from flawscope.data.datamodule import FlawDataset
    from flawscope.data.transforms import build_eval_transform
    from flawscope.evaluation.predictions import defect_scores, predict_loader, split_metrics

    cfg = model.config
    dataset = FlawDataset(samples, list(cfg.class_names), cfg.preprocess,
                          build_eval_transform(cfg.preprocess), DecodeCache(),
                          defective_classes=frozenset(cfg.defective_classes))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    pred = predict_loader(model, loader, device)
    model.cpu()
    scores = defect_scores(pred, list(cfg.class_names), tuple(cfg.defective_classes))
    flags = pred["defective"].astype(int)
    rows = [_row(samples[int(i)], float(s), int(f), threshold, model)
            for i, s, f in zip(pred["index"], scores, flags, strict=True)]
    if pred["scores"].ndim == 2:
        for row, p in zip(rows, pred["scores"], strict=True):
            row["predicted"] = cfg.class_names[int(np.argmax(p))]
    known = flags >= 0
    metrics: dict[str, Any] = {"metrics": {}}
    if known.any():
        metrics["metrics"] = split_metrics(pred, threshold, model)
        metrics.update(_reject(flags[known], scores[known], threshold, model))

    def report(out_dir: Path, info: dict[str, Any]) -> Path:
        from flawscope.evaluation.report import Report, write_classification_report

        if not known.any():
            rep = Report(f"flawscope evaluate: {cfg.name}", "no labelled item: nothing to score")
            rep.add_metrics_table("Threshold and run", info)
            return rep.save(out_dir / "report.html")
        positions = pred["index"][known]
        return write_classification_report(
            out_dir, flags[known], scores[known], threshold=threshold, class_names=_binary_names(model),
            sample_paths=[str(samples[int(i)].image) for i in positions],
            images_loader=lambda i: dataset[int(positions[i])]["image"].numpy(),
            val_info=info, title=f"flawscope evaluate: {cfg.name}",
        )

    return metrics, rows, report


def _binary_names(model: FlawModel) -> tuple[str, str]:
    classes, defective = list(model.config.class_names), list(model.config.defective_classes)
    ok = [c for c in classes if c not in defective]
    return (ok[0] if len(ok) == 1 else "ok", defective[0] if len(defective) == 1 else "defect")


# -- segmenters ----------------------------------------------------------------------------------------------
def _segment_sample(model: FlawModel, sample: Sample, cache: Any, batch_size: int, device: str,
                    tile: int | None, overlap: int | None) -> tuple[np.ndarray, Any, np.ndarray | None]:
    """(image, SegmentationOutput, gt mask or None) of one sample (its crop, at native resolution)."""
    from flawscope.data.tiling import crop_pad
    from flawscope.deploy.predict import segment_image

    pre = model.config.preprocess
    full = cache.get_image(sample.image, pre.intensity, pre.in_chans)
    image = np.array(crop_pad(full, sample.crop))
    gt = None
    if sample.mask is not None:
        full_mask = cache.get_mask(sample.mask, tuple(full.shape[-2:]), sample.image)
        gt = np.array(crop_pad(full_mask, sample.crop))
    return image, segment_image(model, image, tile, overlap, batch_size, device), gt


def _evaluate_segmenter(
    model: FlawModel, index: DatasetIndex, samples: list[Sample], threshold: float, batch_size: int,
    device: str, tile: int | None, overlap: int | None, n_show: int = 4,
) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    from flawscope.data.cache import DecodeCache
    from flawscope.deploy.predict import PIXEL_THRESHOLD
    from flawscope.evaluation.metrics import binary_metrics
    from flawscope.evaluation.segmentation import SegmentationScorer

    cache = DecodeCache(max_bytes=256 * 1024**2)  # images are visited once; keep the cache small
    scorer = SegmentationScorer(threshold=PIXEL_THRESHOLD)
    rows, masked = [], []
    for i, s in enumerate(samples):
        _, seg, gt = _segment_sample(model, s, cache, batch_size, device, tile, overlap)
        row = _row(s, seg.score, _defective(s, index, gt), threshold, model)
        if gt is not None:
            iou = scorer.update(seg.prob >= PIXEL_THRESHOLD, gt)["iou"]
            row["iou"] = "" if math.isnan(iou) else round(iou, 6)
            masked.append(i)
        rows.append(row)
    flags = np.array([r["defective"] if r["defective"] != "" else -1 for r in rows], dtype=int)
    scores = np.array([r["score"] for r in rows], dtype=np.float64)
    known = flags >= 0
    metrics: dict[str, Any] = {"metrics": binary_metrics(flags[known], scores[known], threshold)
                               if known.any() else {}}
    metrics.update(_reject(flags[known], scores[known], threshold, model))
    if masked:
        seg_metrics = scorer.compute()
        metrics["pixel"] = {**seg_metrics["pixel"], "pixel_threshold": PIXEL_THRESHOLD}
        metrics["flaw"] = seg_metrics["flaw"]

    def report(out_dir: Path, info: dict[str, Any]) -> Path:
        from flawscope.evaluation.curves import plot_curves
        from flawscope.evaluation.report import Report, SegmentationItem, add_segmentation_results

        cfg = model.config
        rep = Report(f"flawscope evaluate: {cfg.name}",
                     f"segmenter; {len(samples)} images, {len(masked)} with a ground-truth mask")
        rep.add_metrics_table("Threshold and run", info)
        if metrics["metrics"]:
            rep.add_metrics_table("Image-level metrics (image score vs threshold)", metrics["metrics"])
        if known.any() and len(np.unique(flags[known])) == 2:
            names = {"pr": "Precision-recall", "roc": "ROC", "scores": "Score distribution",
                     "miss_false_alarm": "Miss rate vs false alarm rate"}
            for key, path in plot_curves(flags[known], scores[known], out_dir / "figures", threshold).items():
                rep.add_image(f"Image level: {names[key]}", path)
        if not masked:
            rep.add_text("No image has a ground-truth mask: no pixel or flaw metrics.", "Segmentation")
            return rep.save(out_dir / "report.html")

        def show(k: int) -> SegmentationItem:
            # Recomputed for the few shown images rather than keeping every map in memory.
            s = samples[masked[k]]
            image, seg, gt = _segment_sample(model, s, cache, batch_size, device, tile, overlap)
            return SegmentationItem(image, gt, seg.prob >= PIXEL_THRESHOLD, s.image.name)

        add_segmentation_results(rep, metrics, scorer.per_image, show, n_show, PIXEL_THRESHOLD)
        return rep.save(out_dir / "report.html")

    return metrics, rows, report
