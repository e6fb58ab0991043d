"""Batch prediction on image files: what `flawscope predict` runs, through the one Predictor.

The model's own `ModelConfig` decides how a file becomes input (the Preprocessor), its val-chosen threshold
and reject band the decision (the `DecisionPolicy`, overridable), and the Predictor's tiling policy covers
images of any size: patch models score every tile and report the worst one; segmenters blend tile maps.

Outputs (in `out_dir`, never in the input folders):
    predictions.csv: one record per readable image (`flawscope.inference.records`), written as it comes.
    skipped.csv: path, reason for every input that could not be read (always written, maybe empty).
    masks/<name>.png, overlays/<name>.png, flaws.csv: segmenters only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flawscope.data.sample import SkippedFile, write_skipped
from flawscope.errors import ConfigError, FlawscopeError

if TYPE_CHECKING:
    from flawscope.inference.records import Prediction
    from flawscope.models.base import FlawModel


@dataclass
class PredictResult:
    """What `predict_files` wrote.

    Attributes:
        out_dir: output folder.
        predictions: predictions.csv.
        skipped: inputs that could not be read, with the reason (also in skipped.csv).
        records: the Prediction of every image (probability maps dropped).
        decisions: count per decision (ok, defect, unsure).
        flaws: flaws.csv (segmenters), else None.
    """

    out_dir: Path
    predictions: Path
    skipped: list[SkippedFile] = field(default_factory=list)
    records: list[Prediction] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    flaws: Path | None = None


def collect_images(
    inputs: Sequence[str | Path], out_dir: str | Path | None = None
) -> tuple[list[tuple[Path, str]], list[SkippedFile]]:
    """Image files named by the inputs (folders are searched recursively), each with a unique output name.

    Args:
        inputs: image files and/or folders.
        out_dir: the output folder; refused when it lies inside an input folder (outputs would mix with
            the inputs and be read back as images next time).

    Returns:
        ([(path, name)], skipped): name is the path relative to its input folder without suffix (the stem
        for files given directly), made unique; skipped lists missing paths and files that are not images.
    """
    from flawscope.data.io import SUPPORTED_SUFFIXES

    suffixes = {s.lower() for s in SUPPORTED_SUFFIXES}
    out = Path(out_dir).resolve() if out_dir is not None else None
    found: list[tuple[Path, str]] = []
    skipped: list[SkippedFile] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            skipped.append(SkippedFile(path, "does not exist"))
            continue
        if path.is_dir():
            if out is not None and out.is_relative_to(path.resolve()):
                raise ConfigError(
                    f"output folder {out_dir} is inside the input folder {path}; predictions must not be "
                    "written among the inputs — pass an --out folder outside it"
                )
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                rel = f.relative_to(path)
                if any(part.startswith(".") for part in rel.parts):
                    continue  # hidden files and folders (.DS_Store, .ipynb_checkpoints)
                if f.suffix.lower() in suffixes:
                    found.append((f, rel.with_suffix("").as_posix()))
                else:
                    skipped.append(SkippedFile(f, f"not an image file type ({f.suffix or 'no suffix'})"))
        elif path.suffix.lower() in suffixes:
            found.append((path, path.stem))
        else:
            skipped.append(SkippedFile(path, f"not an image file type ({path.suffix or 'no suffix'})"))
    seen: dict[str, int] = {}
    unique = []
    for path, name in found:
        n = seen.get(name, 0)
        seen[name] = n + 1
        unique.append((path, name if n == 0 else f"{name}-{n}"))
    return unique, skipped


def predict_files(
    model: FlawModel | str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    pixel_size_mm: float | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    threshold: float | None = None,
) -> PredictResult:
    """Predict every image named by `inputs` and write the results to `out_dir`.

    predictions.csv holds one record per image (`flawscope.inference.records.prediction_columns`: path,
    score = P(defect), decision ok / defect / unsure inside the reject band, abstained, predicted class,
    prob_<class>, the scored tile, model id, ...); segmenters add n_flaws, largest_flaw_px, mask and
    overlay, and write masks/<name>.png (0/255, the image's size), overlays/<name>.png (prediction in red)
    and flaws.csv (one row per connected flaw; in mm too when `pixel_size_mm` is given).

    Unreadable inputs are listed in skipped.csv and in the result, never dropped silently; input files are
    only read.

    Args:
        model: a loaded FlawModel, or a run folder / model.pt / checkpoint to load.
        inputs: image files and/or folders (searched recursively).
        out_dir: output folder (created); must not lie inside an input folder.
        pixel_size_mm: side of one pixel in mm, for flaw sizes in mm.
        tile: tile size of the tiling policy; None = the model's input size where needed.
        overlap: tile overlap in pixels; None = a quarter tile.
        batch_size: model inputs (images or tiles) per forward pass.
        device: "cpu", "cuda" or "auto".
        threshold: decision threshold instead of the model's own.

    Raises:
        ConfigError: bad options, no image among the inputs, or an output folder inside an input folder.
    """
    from torch import nn

    from flawscope.data.io import write_image, write_mask
    from flawscope.inference.predictor import DecisionPolicy, ImageItem, Predictor, TilingPolicy
    from flawscope.inference.records import PredictionWriter, prediction_columns, write_flaws
    from flawscope.inference.runfolder import load_model
    from flawscope.inference.visual import overlay_mask

    if not inputs:
        raise ConfigError("no input given; pass image files or folders")
    out = Path(out_dir)
    files, skipped = collect_images(inputs, out)
    if not files:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        raise ConfigError(f"no image files among the inputs {[str(i) for i in inputs]}"
                          + (f" ({reasons})" if reasons else "") + "; images must be one of the supported "
                          "types (.png, .tif, .jpg, .dcm, ...)")
    model_id = None
    if not isinstance(model, nn.Module):
        loaded = load_model(model)
        model, model_id = loaded.model, loaded.model_id
    cfg = model.config
    predictor = Predictor(model, DecisionPolicy.of(cfg, threshold=threshold),
                          TilingPolicy(tile=tile, overlap=overlap), device=device, batch_size=batch_size,
                          pixel_size_mm=pixel_size_mm, model_id=model_id)
    segment = cfg.task == "segment"
    out.mkdir(parents=True, exist_ok=True)
    names = {str(path): name for path, name in files}
    columns = prediction_columns(cfg.class_names, segment) + (["mask", "overlay"] if segment else [])
    records: list[Prediction] = []
    with PredictionWriter(out / "predictions.csv", columns) as writer:
        decoded: dict[str, Any] = {}  # a segmenter's images, kept from decoding until their overlay

        def items() -> Iterator[ImageItem]:
            for path, _ in files:
                try:
                    image = predictor.preprocessor.load(path)
                except FlawscopeError as err:  # ImageReadError: corrupt, truncated, unsupported inside
                    skipped.append(SkippedFile(path, str(err)))
                    continue
                if segment:
                    decoded[str(path)] = image
                yield ImageItem(image, path=str(path))

        for record in predictor.predict_many(items()):
            extra: dict[str, Any] = {}
            image = decoded.pop(record.path, None)
            if segment and record.mask is not None:
                name = names[record.path]
                mask = record.mask
                extra["mask"] = str(write_mask(out / "masks" / f"{name}.png", mask))
                extra["overlay"] = str(write_image(out / "overlays" / f"{name}.png",
                                                   overlay_mask(image, pred=mask)))
            writer.write(record, **extra)
            record.mask_prob = None
            records.append(record)
    flaws_path = write_flaws(out / "flaws.csv", records) if segment else None
    skipped.sort(key=lambda s: str(s.path))
    write_skipped(out / "skipped.csv", skipped)
    decisions = {d: sum(r.decision == d for r in records) for d in ("ok", "defect", "unsure")}
    return PredictResult(out, out / "predictions.csv", skipped, records, decisions, flaws_path)
