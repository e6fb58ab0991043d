"""`neu`: NEU-DET steel surface defects, `{train,validation}/images/<class>/*.jpg` with Pascal-VOC boxes.

Annotations `{train,validation}/annotations/<stem>.xml` are looked up in either split's folder (the release
files train `crazing_240.xml` under validation/). All six classes are defect types (a multi-class task), so
every class is defective unless `defective_classes` says otherwise. The `validation` folder is the test part.
VOC boxes are 1-based and inclusive; they become 0-based, end-exclusive `Box`es (x1 = xmin - 1, x2 = xmax).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from flawscope.data.sample import Box, DatasetIndex, Sample
from flawscope.data.sources import register_source
from flawscope.data.sources._common import SourceContext, list_images, make_index, order_classes, subdirs
from flawscope.errors import DatasetError

# The release's "validation" folder is its held-out evaluation set (what papers report on), so it is
# flawscope's test part; val (early stopping, thresholds) is carved from train, never the reported images.
_SPLITS = {"train": "train", "validation": "test", "val": "val", "test": "test"}


def _split_dirs(root: Path) -> list[tuple[Path, str]]:
    return [(d, _SPLITS[d.name]) for d in subdirs(root) if d.name in _SPLITS and (d / "images").is_dir()]


def _detect(root: Path) -> bool:
    return root.is_dir() and any((d / "annotations").is_dir() for d, _ in _split_dirs(root))


def read_voc_boxes(path: Path) -> tuple[Box, ...]:
    """Boxes of a Pascal-VOC annotation file, labelled by each object's name."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as err:
        raise DatasetError(f"annotation {path} is not valid XML ({err}); fix or delete the file") from None
    boxes = []
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "defect").strip()
        bb = obj.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append(Box(xmin - 1, ymin - 1, xmax, ymax, label=name))
        except (AttributeError, TypeError, ValueError) as err:
            raise DatasetError(f"annotation {path}: object {name!r} has a bad <bndbox> ({err})") from None
    return tuple(boxes)


@register_source("neu", detect=_detect, priority=20)
def load_neu(root: Path, ctx: SourceContext) -> DatasetIndex:
    """NEU-DET: {train,validation}/images/<class>/*.jpg + annotations/*.xml VOC boxes; six defect classes."""
    split_dirs = _split_dirs(root)
    if not split_dirs:
        raise DatasetError(f"{root} holds no NEU-DET split folder (train/images/<class>/, validation/...)")
    annotations = {}
    for split_dir, _ in split_dirs:
        if (split_dir / "annotations").is_dir():
            annotations.update({p.stem: p for p in (split_dir / "annotations").glob("*.xml")})
    class_dirs = [(d, split) for split_dir, split in split_dirs for d in subdirs(split_dir / "images")]
    classes = sorted({d.name for d, _ in class_dirs})
    defective = ctx.resolve_defective(classes, root)
    samples: list[Sample] = []
    for class_dir, split in class_dirs:
        is_bad = class_dir.name in defective
        for image in list_images(class_dir):
            if not ctx.usable(image):
                continue
            xml = annotations.get(image.stem)
            boxes = read_voc_boxes(xml) if xml is not None else ()
            samples.append(Sample(
                image, label=class_dir.name, defective=is_bad, boxes=boxes, split=split,
                flaw_types=(class_dir.name,) if is_bad else (),
                meta=(("annotation", str(xml)),) if xml is not None else (),
            ))
    return make_index(root, "neu", samples, order_classes(classes, defective), defective)
