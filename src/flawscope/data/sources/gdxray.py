"""`gdxray`: GDXray series folders (Mery et al. 2015): castings `C0001/` and welds `W0001/` + masks `W0002/`.

Layout: `<series>/<series>_0001.png ...` and an optional `<series>/ground_truth.txt` with one defect box per
row, `image_index x1 x2 y1 y2` (1-based image index, x = column, floats; note the x1 x2 y1 y2 column order).
Images without a row are defect-free. Weld series W0001 has its binary masks in the parallel series W0002
(W0002_0001.png is the mask of W0001_0001.png); a mask series is not indexed as images.

Groups: a castings series shows one part from many views, so the series is the group; weld radiographs are
single, unrelated images ("not multiple view"), so each weld image is its own group.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from flawscope.data.sample import Box, DatasetIndex, Sample
from flawscope.data.sources import register_source
from flawscope.data.sources._common import BINARY_CLASSES, SourceContext, binary_label, make_index, subdirs
from flawscope.errors import DatasetError

_SERIES = re.compile(r"^[A-Z]\d{4}$")
# Image series -> the series holding its pixel-aligned masks.
MASK_SERIES = {"W0001": "W0002"}


def _series_images(series_dir: Path) -> dict[int, Path]:
    pattern = re.compile(rf"^{re.escape(series_dir.name)}_(\d+)\.png$", re.IGNORECASE)
    found = {}
    for p in series_dir.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file():
            found[int(m.group(1))] = p
    return found


def _is_series(d: Path) -> bool:
    return d.is_dir() and bool(_SERIES.match(d.name)) and bool(_series_images(d))


def _series_dirs(root: Path) -> list[Path]:
    if _is_series(root):
        return [root]
    return [d for d in subdirs(root) if _is_series(d)]


def _detect(root: Path) -> bool:
    return root.is_dir() and bool(_series_dirs(root))


def read_ground_truth(path: Path) -> dict[int, list[Box]]:
    """Boxes per 1-based image index from a GDXray `ground_truth.txt` (rows `index x1 x2 y1 y2`)."""
    text = path.read_text(errors="replace")
    if not text.strip():
        return {}
    try:
        rows = np.loadtxt(text.splitlines(), ndmin=2)
    except ValueError as err:
        raise DatasetError(f"{path} is not a GDXray ground truth (rows 'index x1 x2 y1 y2'): {err}") from None
    if rows.size == 0:
        return {}
    if rows.shape[1] != 5:
        raise DatasetError(
            f"{path} has {rows.shape[1]} columns per row; GDXray boxes have 5 (index x1 x2 y1 y2)"
        )
    boxes: dict[int, list[Box]] = {}
    for line, (idx, x1, x2, y1, y2) in enumerate(rows.tolist(), start=1):
        if idx != int(idx) or idx < 1:
            raise DatasetError(f"{path} row {line}: image index {idx} is not a positive integer")
        try:
            box = Box(x1, y1, x2, y2)
        except DatasetError as err:
            raise DatasetError(f"{path} row {line}: {err}") from None
        boxes.setdefault(int(idx), []).append(box)
    return boxes


@register_source("gdxray", detect=_detect, priority=40)
def load_gdxray(root: Path, ctx: SourceContext) -> DatasetIndex:
    """GDXray series (C0001/, W0001/ + W0002/ masks), ground_truth.txt boxes; images without boxes are ok."""
    series_dirs = _series_dirs(root)
    if not series_dirs:
        raise DatasetError(
            f"{root} holds no GDXray series folders (e.g. C0001/ with C0001_0001.png); "
            "point at the folder holding the series, or at one series"
        )
    names = {d.name for d in series_dirs}
    mask_series = {MASK_SERIES[n] for n in names if n in MASK_SERIES}
    samples: list[Sample] = []
    for series_dir in series_dirs:
        series = series_dir.name
        if series in mask_series:
            continue
        images = _series_images(series_dir)
        gt = series_dir / "ground_truth.txt"
        boxes = read_ground_truth(gt) if gt.is_file() else {}
        for idx in sorted(set(boxes) - set(images)):
            ctx.bad(series_dir / f"{series}_{idx:04d}.png", f"named by {gt} but the image file is missing")
        mask_dir = series_dir.parent / MASK_SERIES[series] if series in MASK_SERIES else None
        masks = _series_images(mask_dir) if mask_dir is not None and mask_dir.is_dir() else {}
        for idx, image in sorted(images.items()):
            image_boxes = tuple(boxes.get(idx, ()))
            mask = masks.get(idx)
            if not ctx.usable(image, mask):
                continue
            # Boxes decide; a masked image without boxes is decided from its mask pixels later.
            defective = True if image_boxes else (None if mask is not None else False)
            samples.append(Sample(
                image, label=binary_label(defective), defective=defective, mask=mask, boxes=image_boxes,
                group=image.stem if series.startswith("W") else series,
                meta=(("series", series), ("image_index", str(idx))),
            ))
    return make_index(root, "gdxray", samples, BINARY_CLASSES, {"defect"})
