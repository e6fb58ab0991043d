"""Evaluate a trained model on a dataset split: what `flawscope evaluate` runs, callable from Python.

The decision threshold is the model's own, chosen on validation data during training
(`flawscope.inference.runfolder.load_model` applies the one threshold rule); it is never re-tuned on the data
being evaluated. An explicit `threshold` overrides it, and metrics.json and the report say so.

Every sample is scored as training scores its val and test splits (`flawscope.evaluation.scoring`): decoded
at native resolution (its crop) and predicted by the Predictor, whose tiling policy covers images larger
than the model input (tiles, image score = highest tile). Segmenters add pixel metrics (counts summed over
images), flaw-level metrics (connected regions) and image-level metrics (the model's image score).

Output folder: metrics.json (keys in METRICS_KEYS, plus "pixel" and "flaw" for segmenters and "reject" when
a reject band is set), report.html (+ figures/), predictions.csv (the Predictor's records; iou for
segmenters).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flawscope.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from flawscope.data.sample import DatasetIndex
    from flawscope.inference.runfolder import LoadedModel

SPLITS = ("test", "val", "all")
METRICS_KEYS = (
    "model", "task", "model_file", "model_id", "run_dir", "data", "format", "split", "n_samples",
    "n_labelled", "classes", "defective_classes", "threshold", "threshold_source", "model_threshold",
    "notes", "metrics",
)


@dataclass
class EvaluationResult:
    """What `evaluate` wrote: metrics (the contents of metrics.json) and the paths of its files."""

    out_dir: Path
    metrics: dict[str, Any]
    metrics_path: Path
    report_path: Path | None
    predictions_path: Path


def _load_index(loaded: LoadedModel, data: str | Path | None, format: str | None,
                ok_classes: list[str] | None = None) -> DatasetIndex:
    from flawscope.data.sources import load_dataset

    model = loaded.model
    run_config = loaded.run.read_config() if loaded.run is not None else {}
    run_data = run_config.get("data") or None
    if data is None and run_data is None:
        raise ConfigError(f"model {loaded.file} has no run folder naming its dataset; pass --data DIR")
    path = Path(data if data is not None else run_data)  # type: ignore[arg-type]
    if not path.exists():
        where = "--data" if data is not None else f"the run's config.yaml ({loaded.run.path})"  # type: ignore[union-attr]
        raise ConfigError(f"dataset {path} (from {where}) does not exist; "
                          "pass --data with the dataset folder")
    same = run_data is not None and (data is None or Path(data).resolve() == Path(run_data).resolve())
    fmt = format or (run_config.get("format", "auto") if same else "auto")
    ok = ok_classes or (run_config.get("ok_classes") if same else None) or None
    classes = {"ok_classes": ok} if ok else {"defective_classes": model.config.defective_classes}
    index = load_dataset(path, format=fmt, on_bad_file=run_config.get("on_bad_file", "error"), **classes)
    names = list(model.config.class_names)
    unknown = sorted({s.label for s in index.samples if s.label} - set(names))
    if unknown and model.config.task == "classify":
        raise DatasetError(
            f"dataset {path} has labels {unknown} that model {model.config.name!r} does not know "
            f"(its classes: {names}); evaluate on a dataset with the model's classes"
        )
    index.classes = names  # the model's class order decides label indices
    return index


def _positions(index: DatasetIndex, split: str, loaded: LoadedModel) -> tuple[list[int], str]:
    """Positions of the samples to evaluate and a description of where they came from."""
    from flawscope.data.splits import load_split

    run_split = loaded.run.split_file if loaded.run is not None and loaded.run.split_file.is_file() else None
    if split == "all":
        return list(range(len(index.samples))), "all samples"
    if split in ("test", "val"):
        if run_split is not None:
            try:
                matched = load_split(index, run_split).part(split)
            except DatasetError:
                matched = []  # the split's files are not this dataset's
            if matched:
                return matched, f"{split} part of {run_split}"
            # Other files than the run's (e.g. the whole radiographs a patch model's crops came from):
            # the images of the groups (series, parts) in that part of the run's split.
            from flawscope.data.splits import split_groups

            groups = split_groups(run_split, (split,))
            by_group = [i for i, s in enumerate(index.samples) if s.group in groups]
            if by_group:
                return by_group, (f"the images of the {len(groups)} group(s) in the {split} part of "
                                  f"{run_split} ({', '.join(sorted(groups))})")
            raise DatasetError(
                f"no sample of dataset {index.root} is in the {split} part of {run_split}, by file or by "
                f"group ({', '.join(sorted(groups)) or 'none listed'}); pass --split all or a split .csv "
                "of this dataset"
            )
        fixed = [i for i, s in enumerate(index.samples) if s.split == split]
        if fixed:
            return fixed, f"the dataset's own {split} part"
        raise ConfigError(
            f"model {loaded.file} comes without a run folder split.csv and dataset {index.root} fixes no "
            f"{split} part; pass --split all, or --split FILE.csv (a split written by a run)"
        )
    path = Path(split)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"--split {split!r} is not one of {', '.join(SPLITS)} nor a split .csv file")
    parts = load_split(index, path)
    if parts.test:
        return parts.test, f"test part of {path}"
    return sorted(parts.train + parts.val), f"every sample listed in {path}"


def _seen_in_training(index: DatasetIndex, positions: list[int], loaded: LoadedModel) -> int:
    """How many of the evaluated samples the run trained or validated on (same image file and crop)."""
    from flawscope.data.splits import sample_member, split_members

    if loaded.run is None or not loaded.run.split_file.is_file():
        return 0
    run_data = loaded.run.read_config().get("data")
    if not run_data:
        return 0
    seen = split_members(loaded.run.split_file, run_data, ("train", "val"))
    return sum(sample_member(index.samples[i]) in seen for i in positions)


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
    tta: bool = False,
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
        batch_size: model inputs (images or tiles) per forward pass.
        device: "cpu", "cuda" or "auto".
        tile, overlap: tile size and overlap of the Predictor's tiling policy (default: the model's input
            size where an image is larger, and a quarter tile).
        write_report: False skips report.html (e.g. inside a benchmark); report_path is then None.
        ok_classes: names of the dataset's defect-free classes (default: the run's, or the model's classes).
        tta: test-time flips (the Predictor's `tta`); recorded in metrics.json. The model's threshold was
            chosen without them.

    Raises:
        ConfigError / DatasetError: bad options, a dataset the split does not fit, labels the model lacks.
    """
    from flawscope.evaluation.scoring import (
        json_safe,
        reject_section,
        score_samples,
        split_metrics,
        write_split_report,
    )
    from flawscope.inference.predictor import DecisionPolicy, Predictor, TilingPolicy
    from flawscope.inference.records import prediction_columns, write_predictions
    from flawscope.inference.runfolder import load_model

    if threshold is not None and not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"threshold {threshold} must be a probability in [0, 1]")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a default checkpoint threshold is reported in the notes instead
        loaded = load_model(source)
    model = loaded.model
    index = _load_index(loaded, data, format, ok_classes)
    positions, origin = _positions(index, split, loaded)
    if not positions:
        raise DatasetError(f"the {split} selection ({origin}) of dataset {index.root} is empty; pick another")
    split_name = split if split in SPLITS else Path(split).name
    if out is None:
        base = loaded.run.path if loaded.run is not None else loaded.file.parent
        out = base / f"eval-{Path(split_name).stem}"
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    cfg = model.config
    policy = DecisionPolicy.of(cfg, threshold=threshold)
    notes = [f"evaluated on {origin}"]
    source_text = loaded.threshold_source
    if not loaded.chosen_on_val and threshold is None:
        notes.append(f"checkpoint {loaded.file.name} holds no threshold chosen on val; {cfg.threshold:.4g} "
                     "is a default — evaluate the run's model.pt or pass --threshold")
    if threshold is not None:
        source_text = f"override (--threshold; the model's own is {cfg.threshold:.4g})"
        notes.append(f"threshold {threshold:.4g} set by the user instead of the model's {cfg.threshold:.4g}")
    if policy.threshold is None:
        source_text = "none (every class is a defect type: no defect-vs-ok decision)"
    if split == "val":
        notes.append("the threshold was chosen on this val split: these numbers are optimistic")
    seen = _seen_in_training(index, positions, loaded)
    if seen:
        notes.append(f"{seen} of the {len(positions)} evaluated samples were in the run's train or val part: "
                     "these numbers are optimistic")
    predictor = Predictor(model, policy, TilingPolicy(tile=tile, overlap=overlap), device=device,
                          batch_size=batch_size, model_id=loaded.model_id, tta=tta)
    samples = [index.samples[i] for i in positions]
    scored = score_samples(predictor, samples)
    metrics: dict[str, Any] = {"metrics": split_metrics(scored, cfg, policy.threshold)}
    if scored.segmentation is not None:
        metrics["pixel"] = {**metrics["metrics"].pop("pixel"), "pixel_threshold": policy.pixel_threshold}
        metrics["flaw"] = metrics["metrics"].pop("flaw")
    metrics.update(reject_section(scored, policy.threshold, policy.reject_band))
    model.cpu()

    result = {
        "model": cfg.name, "task": cfg.task, "model_file": str(loaded.file), "model_id": loaded.model_id,
        "run_dir": str(loaded.run.path) if loaded.run else None, "data": str(index.root),
        "format": index.format, "split": split_name, "n_samples": len(samples),
        "n_labelled": int((scored.labels() >= 0).sum()), "classes": list(cfg.class_names),
        "defective_classes": list(cfg.defective_classes), "threshold": policy.threshold,
        "threshold_source": source_text, "model_threshold": float(cfg.threshold), "tta": tta, "notes": notes,
        **metrics,
    }
    result = json_safe(result)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result, indent=2))
    columns = prediction_columns(cfg.class_names, cfg.task == "segment")
    extras = None
    if scored.segmentation is not None:
        columns.append("iou")
        extras = [{"iou": "" if v is None else round(v, 6)} for v in scored.ious()]
    predictions_path = write_predictions(out_dir / "predictions.csv", scored.records, columns, extras)
    info = {"threshold": policy.threshold, "threshold source": source_text, "model": cfg.name,
            "model file": str(loaded.file), "data": str(index.root), "split": origin,
            "notes": "; ".join(notes)}
    report_path = None
    if write_report:
        flat = {**result["metrics"], **({"pixel": result["pixel"]} if "pixel" in result else {})}
        report_path = write_split_report(out_dir, scored, predictor, flat, info,
                                         f"flawscope evaluate: {cfg.name}")
    return EvaluationResult(out_dir, result, metrics_path, report_path, predictions_path)
