"""`image_mask`: `images/` and `masks/` folders, a mask matched to its image by file stem.

Which images are defective is a property of the mask pixels, which indexing does not decode (header reads
only, so indexing stays fast on large sets). Samples therefore carry `defective=None` and `label=""`; the
data module and `summarize(index, deep=True)` decide it from the mask
(`flawscope.data.labels.defective_from_mask`).
An image without a mask file is kept as unannotated (mask None, defective None).
"""

from __future__ import annotations

from pathlib import Path

from flawscope.data.sample import DatasetIndex, Sample, SkippedFile
from flawscope.data.sources import register_source
from flawscope.data.sources._common import BINARY_CLASSES, SourceContext, list_images, make_index
from flawscope.errors import DatasetError

MASK_DIRS = ("masks", "mask")
IMAGE_DIRS = ("images", "image")
# Stem endings that name a mask file after its image (X.png <- X_mask.png, X_label.png, ...).
MASK_STEM_SUFFIXES = ("_mask", "-mask", "_label", "-label", "_gt", "_seg", "_masks", "_labels")


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _detect(root: Path) -> bool:
    return root.is_dir() and _find(root, IMAGE_DIRS) is not None and _find(root, MASK_DIRS) is not None


def mask_key(stem: str) -> str:
    """The image stem a mask file belongs to (drops a trailing _mask/_label/... ending)."""
    for end in MASK_STEM_SUFFIXES:
        if stem.lower().endswith(end):
            return stem[: -len(end)]
    return stem


@register_source("image_mask", detect=_detect, priority=80)
def load_image_mask(root: Path, ctx: SourceContext) -> DatasetIndex:
    """Segmentation pairs: images/X.png with masks/X.png (or X_mask.png, X_label.png); defective from mask."""
    image_dir, mask_dir = _find(root, IMAGE_DIRS), _find(root, MASK_DIRS)
    if image_dir is None or mask_dir is None:
        raise DatasetError(f"{root} needs an images/ and a masks/ folder for the image_mask format")
    masks: dict[str, Path] = {}
    for mask in list_images(mask_dir):
        key = mask_key(mask.stem)
        if key in masks:
            raise DatasetError(
                f"masks {masks[key].name} and {mask.name} in {mask_dir} both belong to image stem {key!r}; "
                "keep one mask per image"
            )
        masks[key] = mask
    samples = []
    for image in list_images(image_dir):
        mask = masks.pop(image.stem, None)
        if ctx.usable(image, mask):
            samples.append(Sample(image, mask=mask))
    # Masks left over match no image: likely a renamed or deleted image, worth listing.
    orphans = [SkippedFile(m, "mask with no image of the same stem in images/") for m in masks.values()]
    index = make_index(root, "image_mask", samples, BINARY_CLASSES, {"defect"})
    index.skipped = orphans
    return index
