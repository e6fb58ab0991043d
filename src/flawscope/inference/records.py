"""Prediction records: what the Predictor says about one image, and their one CSV / JSON-lines form.

In the spirit of anomalib's output fields, one flat dataclass per image: the scores, the decision (with its
threshold and the `abstained` flag of the reject band), where in the file it looked (crop, worst tile), a
segmenter's probability map and flaws, the model id, and the ground truth when the caller knows it.
Every writer (predict, evaluate, the service's inspection log) serialises records through `to_row` /
`to_json`, so the columns are the same everywhere.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from flawscope.errors import ConfigError

Decision = Literal["ok", "defect", "unsure"]
Crop = tuple[int, int, int, int]  # (top, left, height, width) in the image's pixels

# 8-connectivity: pixels touching at a corner belong to the same flaw (thin diagonal cracks stay one flaw).
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def round_value(value: float | None, digits: int = 6) -> float | None:
    """A finite float rounded for files; None for None, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


@dataclass(frozen=True)
class Flaw:
    """One connected flaw region of a predicted mask (8-connectivity).

    Attributes:
        area_px: pixels in the region.
        bbox: (x1, y1, x2, y2) with exclusive ends, in image pixels.
        equivalent_diameter_px: diameter of the disc of the same area, sqrt(4 area / pi).
        centroid: (x, y).
        score: highest defect probability inside the region (None when only a mask was given).
        area_mm2, equivalent_diameter_mm: sizes in mm when the pixel size is known, else None.
    """

    area_px: int
    bbox: tuple[int, int, int, int]
    equivalent_diameter_px: float
    centroid: tuple[float, float]
    score: float | None = None
    area_mm2: float | None = None
    equivalent_diameter_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat, file-friendly fields (bbox as x1, y1, x2, y2)."""
        x1, y1, x2, y2 = self.bbox
        return {"area_px": self.area_px, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                "equivalent_diameter_px": round_value(self.equivalent_diameter_px),
                "centroid_x": round_value(self.centroid[0]), "centroid_y": round_value(self.centroid[1]),
                "score": round_value(self.score), "area_mm2": round_value(self.area_mm2),
                "equivalent_diameter_mm": round_value(self.equivalent_diameter_mm)}


FLAW_COLUMNS = ("path", "flaw", "area_px", "x1", "y1", "x2", "y2", "equivalent_diameter_px", "centroid_x",
                "centroid_y", "score", "area_mm2", "equivalent_diameter_mm")


def find_flaws(mask: np.ndarray, pixel_size_mm: float | None = None, prob: np.ndarray | None = None
               ) -> list[Flaw]:
    """The connected flaw regions of a bool (H, W) mask, largest first.

    Args:
        mask: (H, W) bool (or 0/non-zero) mask.
        pixel_size_mm: side of one square pixel in mm; None leaves the mm fields None.
        prob: (H, W) probability map the mask came from, for each flaw's score.

    Raises:
        ConfigError: a mask that is not 2-D or a pixel size that is not a positive number.
    """
    from scipy import ndimage

    if pixel_size_mm is not None and not (math.isfinite(pixel_size_mm) and pixel_size_mm > 0):
        raise ConfigError(f"pixel size {pixel_size_mm} mm must be a positive number (e.g. 0.1)")
    m = np.squeeze(np.asarray(mask)) != 0
    if m.ndim != 2:
        raise ConfigError(f"mask has shape {np.shape(mask)}; expected one (H, W) mask")
    labels, n = ndimage.label(m, structure=EIGHT_CONNECTED)
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    centroids = ndimage.center_of_mass(m, labels, idx)
    peaks = ndimage.maximum(prob, labels, idx) if prob is not None else [None] * n
    flaws = []
    for i, sl in enumerate(ndimage.find_objects(labels)):
        area = int(areas[i])
        diameter = math.sqrt(4.0 * area / math.pi)
        cy, cx = centroids[i]
        flaws.append(Flaw(
            area_px=area, bbox=(int(sl[1].start), int(sl[0].start), int(sl[1].stop), int(sl[0].stop)),
            equivalent_diameter_px=diameter, centroid=(float(cx), float(cy)),
            score=None if peaks[i] is None else float(peaks[i]),
            area_mm2=area * pixel_size_mm**2 if pixel_size_mm else None,
            equivalent_diameter_mm=diameter * pixel_size_mm if pixel_size_mm else None,
        ))
    return sorted(flaws, key=lambda f: -f.area_px)


@dataclass
class Prediction:
    """The Predictor's answer for one image (or one crop of it).

    Attributes:
        path: the image file ("" for an in-memory image).
        score: P(defect): the sigmoid output, or the summed probability of the defective classes; for tiled
            images the highest tile's; for segmenters the image head's.
        decision: "defect" at score >= threshold, else "ok"; "unsure" inside the reject band.
        abstained: True when the reject band answered "I don't know" (the part needs review).
        predicted: the most probable class.
        probs: probability per class name (of the scored tile when tiled).
        threshold: the decision threshold used; None when the model has no ok class (nothing to threshold).
        reject_band: the (low, high) band used, or None.
        model_id: which model answered (name and file or digest).
        crop: (top, left, height, width) of the file that was scored; None = the whole file.
        tile: the highest-scoring tile (top, left, height, width) within the scored image; None = untiled.
        n_tiles: tiles the image was cut into (1 = one forward pass).
        label: true class name when known, else "".
        defective: true 1 / 0 when known, else -1.
        mask_prob: (H, W) float32 defect probability per pixel at the image's size (segmenters), or None.
        pixel_threshold: the mask probability at which a pixel counts as defect (segmenters).
        flaws: connected regions of mask_prob >= pixel_threshold, largest first (segmenters); for a tiled
            classifier the regions covered by tiles at or above the threshold (see the Predictor).
        tile_map: (rows, cols) P(defect) of every tile when asked for, else None.
    """

    path: str
    score: float
    decision: Decision
    abstained: bool
    predicted: str
    probs: dict[str, float]
    threshold: float | None
    reject_band: tuple[float, float] | None = None
    model_id: str = ""
    crop: Crop | None = None
    tile: Crop | None = None
    n_tiles: int = 1
    label: str = ""
    defective: int = -1
    mask_prob: np.ndarray | None = field(default=None, repr=False)
    pixel_threshold: float | None = None
    flaws: list[Flaw] = field(default_factory=list)
    tile_map: np.ndarray | None = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray | None:
        """The predicted (H, W) bool defect mask (segmenters), else None."""
        if self.mask_prob is None or self.pixel_threshold is None:
            return None
        return self.mask_prob >= self.pixel_threshold

    def to_row(self) -> dict[str, Any]:
        """One flat CSV row (class probabilities as prob_<class>; crop and tile as 'top left h w')."""
        row: dict[str, Any] = {
            "path": self.path, "crop": _box_text(self.crop), "score": round_value(self.score),
            "decision": self.decision, "abstained": int(self.abstained), "predicted": self.predicted,
            "threshold": round_value(self.threshold), "label": self.label,
            "defective": "" if self.defective < 0 else self.defective, "tile": _box_text(self.tile),
            "n_tiles": self.n_tiles, "model_id": self.model_id,
        }
        row.update({f"prob_{c}": round_value(p) for c, p in self.probs.items()})
        if self.mask_prob is not None:
            row["n_flaws"] = len(self.flaws)
            row["largest_flaw_px"] = self.flaws[0].area_px if self.flaws else 0
        return {k: "" if v is None else v for k, v in row.items()}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: every field but the arrays, flaws as dicts."""
        return {
            "path": self.path, "score": round_value(self.score), "decision": self.decision,
            "abstained": self.abstained, "predicted": self.predicted,
            "probs": {c: round_value(p) for c, p in self.probs.items()},
            "threshold": round_value(self.threshold),
            "reject_band": list(self.reject_band) if self.reject_band else None, "model_id": self.model_id,
            "crop": list(self.crop) if self.crop else None, "tile": list(self.tile) if self.tile else None,
            "n_tiles": self.n_tiles, "label": self.label or None,
            "defective": None if self.defective < 0 else self.defective,
            "pixel_threshold": self.pixel_threshold,
            "flaws": [f.to_dict() for f in self.flaws] if self.mask_prob is not None or self.n_tiles > 1
            else None,
        }


def _box_text(box: Crop | None) -> str:
    return "" if box is None else " ".join(str(int(v)) for v in box)


def prediction_columns(class_names: Sequence[str], segment: bool) -> list[str]:
    """The CSV columns of a model's records, in order."""
    columns = ["path", "crop", "score", "decision", "abstained", "predicted", "threshold", "label",
               "defective", "tile", "n_tiles", "model_id", *(f"prob_{c}" for c in class_names)]
    return columns + (["n_flaws", "largest_flaw_px"] if segment else [])


class PredictionWriter:
    """Streams records to CSV or JSON lines as they come: append-only, flushed after every record.

    Args:
        path: output file; ".jsonl" writes JSON lines, anything else CSV.
        columns: CSV columns (`prediction_columns`), plus any extra keys the caller adds per row.
        append: continue an existing file (a resumed run) instead of replacing it.
    """

    def __init__(self, path: str | Path, columns: Sequence[str], append: bool = False) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.jsonl = self.path.suffix.lower() == ".jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (append and self.path.is_file() and self.path.stat().st_size > 0)
        self._file: IO[str] = self.path.open("w" if fresh else "a", newline="")
        self._csv = None
        if not self.jsonl:
            self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
            if fresh:
                self._csv.writeheader()

    def write(self, record: Prediction, **extra: Any) -> None:
        """Write one record (plus extra fields, e.g. a per-image IoU) and flush it to disk."""
        if self.jsonl:
            self._file.write(json.dumps({**record.to_json(), **extra}) + "\n")
        else:
            self._csv.writerow({**record.to_row(), **extra})  # type: ignore[union-attr]
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_predictions(path: str | Path, records: Iterable[Prediction], columns: Sequence[str],
                      extras: Iterable[dict[str, Any]] | None = None) -> Path:
    """Write records to CSV or JSON lines (by suffix) in one go; `extras` adds fields per record."""
    extras_list = list(extras) if extras is not None else None
    with PredictionWriter(path, columns) as writer:
        for i, record in enumerate(records):
            writer.write(record, **(extras_list[i] if extras_list is not None else {}))
    return Path(path)


def write_flaws(path: str | Path, records: Iterable[Prediction]) -> Path:
    """flaws.csv: one row per flaw of every record (path, flaw number, sizes, box, score)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(FLAW_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for record in records:
            for i, flaw in enumerate(record.flaws):
                row = {"path": record.path, "flaw": i + 1, **flaw.to_dict()}
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path
