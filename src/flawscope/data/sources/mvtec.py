"""`mvtec`: MVTec AD, `<category>/train/good/`, `test/<type>/`, `ground_truth/<type>/X_mask.png`.

The root may be one category folder or the folder holding several. Splits come from the folders (train, test,
and validation -> "val" where present). Each image is its own group: MVTec file names (000.png) repeat across
folders without being the same object.
"""

from __future__ import annotations

from pathlib import Path

from flawscope.data.sample import DatasetIndex, Sample
from flawscope.data.sources import register_source
from flawscope.data.sources._common import (
    BINARY_CLASSES,
    SourceContext,
    binary_label,
    list_images,
    make_index,
    subdirs,
)
from flawscope.errors import DatasetError

_SPLITS = {"train": "train", "validation": "val", "test": "test"}
_GOOD = "good"


def _is_category(d: Path) -> bool:
    return (d / "train" / _GOOD).is_dir() or ((d / "test").is_dir() and (d / "ground_truth").is_dir())


def _categories(root: Path) -> list[Path]:
    if _is_category(root):
        return [root]
    return [d for d in subdirs(root) if _is_category(d)]


def _detect(root: Path) -> bool:
    return root.is_dir() and bool(_categories(root))


@register_source("mvtec", detect=_detect, priority=20)
def load_mvtec(root: Path, ctx: SourceContext) -> DatasetIndex:
    """MVTec AD: <category>/{train,test}/<type>/ + ground_truth/<type>/X_mask.png; "good" is defect-free."""
    categories = _categories(root)
    if not categories:
        raise DatasetError(f"{root} holds no MVTec category (a folder with train/good/ and test/)")
    samples: list[Sample] = []
    for cat in categories:
        for folder, split in _SPLITS.items():
            if not (cat / folder).is_dir():
                continue
            for type_dir in subdirs(cat / folder):
                defective = type_dir.name != _GOOD
                for image in list_images(type_dir):
                    mask = None
                    if defective:
                        candidate = cat / "ground_truth" / type_dir.name / f"{image.stem}_mask.png"
                        mask = candidate if candidate.is_file() else None
                    if not ctx.usable(image, mask):
                        continue
                    samples.append(Sample(
                        image, label=binary_label(defective), defective=defective, mask=mask,
                        group=f"{cat.name}/{folder}/{type_dir.name}/{image.stem}",
                        flaw_types=(type_dir.name,) if defective else (), split=split,
                        meta=(("category", cat.name),),
                    ))
    return make_index(root, "mvtec", samples, BINARY_CLASSES, {"defect"})
