"""`severstal`: Severstal steel defects (Kaggle), `train.csv` run-length masks + `train_images/`.

`train.csv` has columns `ImageId,ClassId,EncodedPixels` (or the older `ImageId_ClassId,EncodedPixels` with
ids like `0002cc93b.jpg_1` and empty rows for absent classes). Images with no non-empty row are defect-free.
A defective image's mask is the union of its per-class `RleMask`s; its flaw types are `class_<ClassId>`. The
set is fully annotated, so a defect-free image gets an empty mask `(RleMask("", h, w),)` rather than None.
RLE masks need the image size, so image headers are read even with check="none".
"""

from __future__ import annotations

import csv
from pathlib import Path

from flawscope.data.sample import DatasetIndex, RleMask, Sample
from flawscope.data.sources import register_source
from flawscope.data.sources._common import (
    BINARY_CLASSES,
    SourceContext,
    binary_label,
    list_images,
    make_index,
)
from flawscope.errors import DatasetError

CSV_NAME = "train.csv"
IMAGE_DIR = "train_images"


def _detect(root: Path) -> bool:
    return root.is_dir() and (root / CSV_NAME).is_file() and (root / IMAGE_DIR).is_dir()


def read_rle_csv(path: Path) -> dict[str, dict[str, str]]:
    """Image file name -> {class id: RLE} from a Severstal train.csv (both column layouts)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if {"ImageId", "ClassId", "EncodedPixels"} <= set(cols):
            split_id = False
        elif {"ImageId_ClassId", "EncodedPixels"} <= set(cols):
            split_id = True
        else:
            raise DatasetError(
                f"{path} has columns {cols}; expected ImageId,ClassId,EncodedPixels "
                "(or ImageId_ClassId,EncodedPixels)"
            )
        rles: dict[str, dict[str, str]] = {}
        for line_no, row in enumerate(reader, start=2):
            if split_id:
                image_id, _, class_id = (row["ImageId_ClassId"] or "").rpartition("_")
            else:
                image_id, class_id = row["ImageId"], row["ClassId"]
            rle = (row["EncodedPixels"] or "").strip()
            if not image_id or not class_id:
                raise DatasetError(f"{path} line {line_no}: missing image id or class id in {row}")
            if not rle:
                continue  # old layout: one row per (image, class), empty when the class is absent
            tokens = rle.split()
            if len(tokens) % 2 or not all(t.isdigit() for t in tokens):
                raise DatasetError(
                    f"{path} line {line_no}: EncodedPixels of {image_id} is not 'start length' integer pairs"
                )
            if class_id in rles.setdefault(image_id, {}):
                raise DatasetError(f"{path} line {line_no}: {image_id} class {class_id} appears twice")
            rles[image_id][class_id] = rle
    return rles


@register_source("severstal", detect=_detect, priority=20)
def load_severstal(root: Path, ctx: SourceContext) -> DatasetIndex:
    """Severstal: train.csv (ImageId,ClassId,EncodedPixels) RLE masks + train_images/; no row = ok."""
    if not _detect(root):
        raise DatasetError(f"{root} needs {CSV_NAME} and a {IMAGE_DIR}/ folder for the severstal format")
    rles = read_rle_csv(root / CSV_NAME)
    images = {p.name: p for p in list_images(root / IMAGE_DIR)}
    for name in sorted(set(rles) - set(images)):
        ctx.bad(root / IMAGE_DIR / name, f"listed in {root / CSV_NAME} but the image file is missing")
    samples: list[Sample] = []
    for name, image in sorted(images.items()):
        classes = rles.get(name, {})
        if not ctx.usable(image):
            continue
        info = ctx.info(image)
        if info is None:
            continue
        defective = bool(classes)
        order = sorted(classes, key=lambda c: (len(c), c))  # numeric ids in numeric order
        # The set is fully annotated: a defect-free image's mask is known to be empty (an empty RLE).
        mask = tuple(RleMask(classes[c], info.height, info.width) for c in order) or (
            RleMask("", info.height, info.width),
        )
        samples.append(Sample(
            image, label=binary_label(defective), defective=defective, mask=mask,
            flaw_types=tuple(f"class_{c}" for c in order),
        ))
    return make_index(root, "severstal", samples, BINARY_CLASSES, {"defect"})
