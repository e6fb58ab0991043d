"""Batch prediction on image files: defect probabilities for classifiers, masks and flaw lists for segmenters.

The model's own `ModelConfig` decides how a file becomes input (intensity, channels, size, normalisation), the
decision threshold and the reject band, so prediction is fed exactly as training was. Images of any size are
handled: segmenters run sliding-window inference at the model's input size (or resize, when the model was
trained on resized whole images), patch classifiers score every tile and report the worst one.

Outputs (in `out_dir`, never in the input folders):
    predictions.csv: one row per readable image.
    skipped.csv: path, reason for every input that could not be read (always written, maybe empty).
    masks/<name>.png, overlays/<name>.png, flaws.csv: segmenters only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flawscope.data.sample import SkippedFile
from flawscope.errors import ConfigError, FlawscopeError

if TYPE_CHECKING:
    import torch

    from flawscope.models.base import FlawModel

# A pixel is called defective at this mask probability (as training's pixel metrics count it).
PIXEL_THRESHOLD = 0.5
MODEL_FILE = "model.pt"


@dataclass
class SegmentationOutput:
    """Result of one image through a segmenter.

    Attributes:
        prob: (H, W) float32 defect probability per pixel, at the image's own size.
        score: image-level defect probability (the model's image head; the worst tile when tiled).
    """

    prob: np.ndarray
    score: float


@dataclass
class PredictResult:
    """What `predict_files` wrote.

    Attributes:
        out_dir: output folder.
        predictions: predictions.csv.
        skipped: inputs that could not be read, with the reason (also in skipped.csv).
        rows: the rows of predictions.csv.
        decisions: count per decision (ok, defect, unsure).
        flaws: flaws.csv (segmenters), else None.
    """

    out_dir: Path
    predictions: Path
    skipped: list[SkippedFile] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    flaws: Path | None = None


# -- model and inputs ----------------------------------------------------------------------------------------
def find_model_file(source: str | Path) -> Path:
    """The model file a user means: a model.pt / .ckpt file, or a run folder's model.pt.

    Raises:
        ConfigError: the path does not exist, or a folder without model.pt.
    """
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return path / MODEL_FILE
        ckpts = sorted((path / "checkpoints").glob("*.ckpt")) if (path / "checkpoints").is_dir() else []
        hint = f"; pass one of its checkpoints, e.g. {ckpts[-1]}" if ckpts else ""
        raise ConfigError(f"folder {path} holds no {MODEL_FILE} (is it a finished run folder?){hint}")
    raise ConfigError(f"model {path} does not exist; pass a run folder, its model.pt or a checkpoint .ckpt")


def checkpoint_threshold(model_file: str | Path) -> tuple[float | None, Path | None]:
    """The val-chosen threshold of the run a Lightning checkpoint belongs to, and the run's best checkpoint.

    A .ckpt is written during training, before the threshold is chosen on val, so it holds only the default;
    the run's metrics.json has the chosen one. (None, None) when the file is no checkpoint of a finished run.
    """
    import json

    path = Path(model_file)
    metrics = path.parent.parent / "metrics.json"
    if path.suffix.lower() != ".ckpt" or path.parent.name != "checkpoints" or not metrics.is_file():
        return None, None
    found = json.loads(metrics.read_text())
    best = found.get("best_checkpoint")
    value = found.get("threshold")
    return (float(value) if value is not None else None), (Path(best) if best else None)


def load_model(source: str | Path) -> FlawModel:
    """Load a trained model from a run folder, model.pt or Lightning checkpoint (on CPU, eval mode).

    A checkpoint of a finished run gets the run's val-chosen threshold; any other checkpoint keeps its
    untuned default threshold, with a warning.
    """
    import warnings

    from flawscope.models.checkpoint import load_model_from_checkpoint

    path = find_model_file(source)
    model = load_model_from_checkpoint(path)
    if path.suffix.lower() == ".ckpt":
        threshold, _ = checkpoint_threshold(path)
        if threshold is not None:
            model.config.threshold = threshold
        else:
            warnings.warn(f"checkpoint {path} holds no threshold chosen on val (its run has no "
                          f"metrics.json); using the default {model.config.threshold:.4g} — prefer the "
                          "run's model.pt",
                          stacklevel=2)
    return model


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


# -- scoring -------------------------------------------------------------------------------------------------
def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid of a single defect logit (B,), or softmax over K class logits (B, K)."""
    import torch

    return torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def defect_probability(
    probs: np.ndarray, class_names: Sequence[str], defective: Sequence[str]
) -> np.ndarray:
    """P(defective) per item: (N,) sigmoid outputs as they are, (N, K) class probabilities summed over the
    defective classes."""
    probs = np.asarray(probs)
    if probs.ndim == 1:
        return probs
    idx = [list(class_names).index(c) for c in defective]
    return probs[:, idx].sum(axis=1)


def decide(p_defect: float, threshold: float, reject_band: Sequence[float] | None = None) -> str:
    """"unsure" inside the reject band [low, high], else "defect" at p >= threshold, else "ok"."""
    if reject_band is not None and reject_band[0] <= p_defect <= reject_band[1]:
        return "unsure"
    return "defect" if p_defect >= threshold else "ok"


def _normalize(image: torch.Tensor, model: FlawModel) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    pre = model.config.preprocess
    return TF.normalize(image, list(pre.mean), list(pre.std))


def _pair(value: int | Sequence[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    if value is None:
        return default
    pair = (int(value), int(value)) if isinstance(value, int | float) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ConfigError(f"tile {value!r} must be a positive size (e.g. 256)")
    return pair  # type: ignore[return-value]


def _overlap(overlap: int | None, tile: tuple[int, int]) -> tuple[int, int]:
    if overlap is None:
        return tile[0] // 4, tile[1] // 4  # wide enough to hide tile seams of small networks
    if overlap < 0 or overlap >= min(tile):
        raise ConfigError(f"overlap {overlap} must be >= 0 and smaller than the tile {tile[0]}x{tile[1]}")
    return overlap, overlap


def _device(device: str) -> torch.device:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


def classify_image(
    model: FlawModel,
    image: np.ndarray,
    tile: int | Sequence[int] | None = None,
    overlap: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Class probabilities of one image ((1,) defect probability or (K,)).

    The image goes through the model's evaluation transform. A patch model (preprocess.resize False) given an
    image larger than its input, or any model given `tile`, scores every tile (at the model's input size
    unless `tile` says otherwise) and returns the tile with the highest defect probability.

    Args:
        model: a trained classifier.
        image: float32 (C, H, W) in [0, 1] (flawscope.data.io.load_image with the model's preprocess).
        tile: tile size; None = whole image (resized models) or input size (patch models on large images).
        overlap: pixels shared by neighbouring tiles; None = a quarter tile.
        batch_size: tiles per forward pass.
        device: "cpu", "cuda" or "auto".

    Returns:
        (probabilities, crop): crop is (top, left, height, width) of the scored tile; None = whole image.
    """
    import torch

    from flawscope.data.tiling import pad_to_min, tile_grid
    from flawscope.data.transforms import build_eval_transform

    pre = model.config.preprocess
    transform = build_eval_transform(pre)
    dev = _device(device)
    model.to(dev).eval()
    x = torch.from_numpy(np.ascontiguousarray(image))
    h, w = x.shape[-2:]
    size = _pair(tile, tuple(pre.input_size))
    tiled = tile is not None or (not pre.resize and (h > size[0] or w > size[1]))
    corners = tile_grid(max(h, size[0]), max(w, size[1]), size, _overlap(overlap, size)) if tiled else [None]
    padded = pad_to_min(x, size) if tiled else x
    probs = []
    with torch.inference_mode():
        for start in range(0, len(corners), batch_size):
            chunk = corners[start : start + batch_size]
            crops = [padded if c is None else padded[:, c[0] : c[0] + size[0], c[1] : c[1] + size[1]]
                     for c in chunk]
            batch = torch.stack([transform(c)["image"] for c in crops]).to(dev)
            probs.append(probabilities(model.forward_outputs(batch)["logits"]).cpu().numpy())
    p = np.concatenate(probs)
    best = int(np.argmax(defect_probability(p, model.config.class_names, model.config.defective_classes)))
    corner = corners[best]
    crop = None if corner is None else (*corner, min(size[0], h - corner[0]), min(size[1], w - corner[1]))
    return np.atleast_1d(p[best]), crop


def segment_image(
    model: FlawModel,
    image: np.ndarray,
    tile: int | Sequence[int] | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
) -> SegmentationOutput:
    """Defect probability map of one image at its own size, and its image-level defect probability.

    A model trained on resized whole images (preprocess.resize) sees the image resized to its input size and
    its map is resized back; a patch model, or any model given `tile`, runs sliding-window inference over
    the native-resolution image (tiles of the input size unless `tile` says otherwise, blended with
    `flawscope.deploy.sliding.sliding_window_predict`); the image score is then its worst tile's.

    Args:
        model: a trained segmenter (forward_outputs gives "mask_logits", optionally image "logits").
        image: float32 (C, H, W) in [0, 1].
        tile: tile size; None = as described above.
        overlap: pixels shared by neighbouring tiles; None = a quarter tile.
        batch_size: tiles per forward pass.
        device: "cpu", "cuda" or "auto".
    """
    import torch
    import torch.nn.functional as F

    from flawscope.data.transforms import build_eval_transform
    from flawscope.deploy.sliding import sliding_window_predict
    from flawscope.models.base import image_probabilities

    pre = model.config.preprocess
    dev = _device(device)
    model.to(dev).eval()
    x = torch.from_numpy(np.ascontiguousarray(image))
    h, w = x.shape[-2:]

    def image_prob(out: dict[str, torch.Tensor]) -> torch.Tensor:
        return image_probabilities(out).reshape(-1)

    if pre.resize and tile is None:
        with torch.inference_mode():
            out = model.forward_outputs(build_eval_transform(pre)(x)["image"][None].to(dev))
            prob = torch.sigmoid(out["mask_logits"])
            prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            return SegmentationOutput(prob.cpu().numpy().astype(np.float32), float(image_prob(out)[0]))

    size = _pair(tile, tuple(pre.input_size))
    tile_scores: list[torch.Tensor] = []

    def run(tiles: torch.Tensor) -> torch.Tensor:
        out = model.forward_outputs(tiles)
        tile_scores.append(image_prob(out).cpu())
        return torch.sigmoid(out["mask_logits"])

    prob = sliding_window_predict(run, _normalize(x, model), size, _overlap(overlap, size), batch_size,
                                  device=dev)
    return SegmentationOutput(prob[0].numpy().astype(np.float32), float(torch.cat(tile_scores).max()))


# -- files ---------------------------------------------------------------------------------------------------
def _write_csv(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_skipped(path: Path, skipped: Sequence[SkippedFile]) -> Path:
    """skipped.csv: path, reason (header only when nothing was skipped)."""
    return _write_csv(path, [{"path": str(s.path), "reason": s.reason} for s in skipped], ("path", "reason"))


def _fmt(value: float | None) -> str | float:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 6)


def predict_files(
    model: FlawModel | str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    pixel_size_mm: float | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
) -> PredictResult:
    """Predict every image named by `inputs` and write the results to `out_dir`.

    Classifiers: predictions.csv with path, p_defect, decision (ok / defect / unsure inside the model's
    reject band), prob_<class> per class, and the scored tile when tiled. Segmenters: predictions.csv (path,
    p_defect, decision, n_flaws, largest_flaw_px, mask, overlay), masks/<name>.png (0/255, the image's size),
    overlays/<name>.png (prediction in red) and flaws.csv (one row per connected flaw: area, bbox,
    equivalent diameter, centroid; in mm too when `pixel_size_mm` is given).

    Unreadable inputs are listed in skipped.csv and in the result, never dropped silently; input files are
    only read.

    Args:
        model: a loaded FlawModel, or a run folder / model.pt / checkpoint to load.
        inputs: image files and/or folders (searched recursively).
        out_dir: output folder (created); must not lie inside an input folder.
        pixel_size_mm: side of one pixel in mm, for flaw sizes in mm.
        tile: tile size for sliding-window / tiled inference; None = the model's input size where needed.
        overlap: tile overlap in pixels; None = a quarter tile.
        batch_size: tiles per forward pass.
        device: "cpu", "cuda" or "auto".

    Raises:
        ConfigError: bad options, no image among the inputs, or an output folder inside an input folder.
    """
    from flawscope.data.io import load_image

    if pixel_size_mm is not None and not (math.isfinite(pixel_size_mm) and pixel_size_mm > 0):
        raise ConfigError(f"pixel size {pixel_size_mm} mm must be a positive number (e.g. 0.1)")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not inputs:
        raise ConfigError("no input given; pass image files or folders")
    out = Path(out_dir)
    files, skipped = collect_images(inputs, out)
    if not files:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        raise ConfigError(f"no image files among the inputs {[str(i) for i in inputs]}"
                          + (f" ({reasons})" if reasons else "") + "; images must be one of the supported "
                          "types (.png, .tif, .jpg, .dcm, ...)")
    from torch import nn

    if not isinstance(model, nn.Module):
        model = load_model(model)
    cfg = model.config
    pre = cfg.preprocess
    segment = cfg.task == "segment"
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    flaw_rows: list[dict[str, Any]] = []
    for path, name in files:
        try:
            image = load_image(path, pre.intensity, pre.in_chans)
        except FlawscopeError as err:  # ImageReadError: corrupt, truncated, unsupported inside
            skipped.append(SkippedFile(path, str(err)))
            continue
        if segment:
            row, flaws = _segment_file(model, image, path, name, out, pixel_size_mm, tile, overlap,
                                       batch_size, device)
            flaw_rows += flaws
        else:
            probs, crop = classify_image(model, image, tile, overlap, batch_size, device)
            p_def = float(probs[0] if probs.size == 1
                          else defect_probability(probs[None], cfg.class_names, cfg.defective_classes)[0])
            row = {"path": str(path), "p_defect": _fmt(p_def), "decision": decide(p_def, cfg.threshold,
                                                                                   cfg.reject_band)}
            class_probs = probs if probs.size > 1 else np.array([1.0 - probs[0], probs[0]])
            row.update({f"prob_{c}": _fmt(v) for c, v in zip(cfg.class_names, class_probs, strict=True)})
            row["tile"] = "" if crop is None else " ".join(map(str, crop))
        rows.append(row)

    if segment:
        columns = ["path", "p_defect", "decision", "n_flaws", "largest_flaw_px", "mask", "overlay"]
        flaws_path = _write_csv(out / "flaws.csv", flaw_rows, FLAW_COLUMNS)
    else:
        columns = ["path", "p_defect", "decision", *(f"prob_{c}" for c in cfg.class_names), "tile"]
        flaws_path = None
    predictions = _write_csv(out / "predictions.csv", rows, columns)
    skipped.sort(key=lambda s: str(s.path))
    write_skipped(out / "skipped.csv", skipped)
    decisions = {d: sum(r["decision"] == d for r in rows) for d in ("ok", "defect", "unsure")}
    return PredictResult(out, predictions, skipped, rows, decisions, flaws_path)


FLAW_COLUMNS = ("path", "flaw", "area_px", "x1", "y1", "x2", "y2", "equivalent_diameter_px", "centroid_x",
                "centroid_y", "area_mm2", "equivalent_diameter_mm")


def _segment_file(
    model: FlawModel, image: np.ndarray, path: Path, name: str, out: Path, pixel_size_mm: float | None,
    tile: int | None, overlap: int | None, batch_size: int, device: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from flawscope.data.io import write_image, write_mask
    from flawscope.evaluation.report import overlay_mask
    from flawscope.evaluation.segmentation import describe_flaws

    cfg = model.config
    seg = segment_image(model, image, tile, overlap, batch_size, device)
    mask = seg.prob >= PIXEL_THRESHOLD
    mask_path = write_mask(out / "masks" / f"{name}.png", mask)
    overlay_path = write_image(out / "overlays" / f"{name}.png", overlay_mask(image, pred=mask))
    flaws = describe_flaws(mask, pixel_size_mm)
    flaw_rows = [
        {"path": str(path), "flaw": i + 1, "area_px": f["area_px"], "x1": f["bbox"][0], "y1": f["bbox"][1],
         "x2": f["bbox"][2], "y2": f["bbox"][3], "equivalent_diameter_px": _fmt(f["equivalent_diameter_px"]),
         "centroid_x": _fmt(f["centroid"][0]), "centroid_y": _fmt(f["centroid"][1]),
         "area_mm2": _fmt(f["area_mm2"]), "equivalent_diameter_mm": _fmt(f["equivalent_diameter_mm"])}
        for i, f in enumerate(flaws)
    ]
    row = {
        "path": str(path), "p_defect": _fmt(seg.score), "decision": decide(seg.score, cfg.threshold,
                                                                           cfg.reject_band),
        "n_flaws": len(flaws), "largest_flaw_px": flaws[0]["area_px"] if flaws else 0,
        "mask": str(mask_path), "overlay": str(overlay_path),
    }
    return row, flaw_rows
