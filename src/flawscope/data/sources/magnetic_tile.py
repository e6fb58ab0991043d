"""`magnetic_tile`: the Magnetic-tile defect set (Huang et al.), `MT_<Class>/Imgs/X.jpg` with mask `X.png`."""

from __future__ import annotations

from pathlib import Path

from flawscope.data.sample import DatasetIndex, Sample
from flawscope.data.sources import register_source
from flawscope.data.sources._common import SourceContext, make_index, order_classes, subdirs
from flawscope.errors import DatasetError

_IMAGE_SUFFIXES = (".jpg", ".jpeg")


def _class_dirs(root: Path) -> list[Path]:
    return [d for d in subdirs(root) if d.name.startswith("MT_") and (d / "Imgs").is_dir()]


def _detect(root: Path) -> bool:
    return root.is_dir() and bool(_class_dirs(root))


@register_source("magnetic_tile", detect=_detect, priority=30)
def load_magnetic_tile(root: Path, ctx: SourceContext) -> DatasetIndex:
    """Magnetic tile: MT_<Class>/Imgs/X.jpg + X.png mask; classes blowhole..uneven, "free" is defect-free."""
    class_dirs = _class_dirs(root)
    if not class_dirs:
        raise DatasetError(f"{root} holds no MT_<Class>/Imgs/ folders; point at the Magnetic-tile root")
    samples: list[Sample] = []
    classes = [d.name[3:].lower() for d in class_dirs]  # MT_Blowhole -> blowhole
    defective = ctx.resolve_defective(classes, root)
    for class_dir, name in zip(class_dirs, classes, strict=True):
        is_bad = name in defective
        images = sorted(p for p in (class_dir / "Imgs").iterdir()
                        if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith("."))
        for image in images:
            mask = image.with_suffix(".png")
            if not mask.is_file():
                ctx.bad(image, f"its mask {mask.name} is missing (each Imgs/X.jpg needs Imgs/X.png)")
                continue
            if ctx.usable(image, mask):
                # No part ids exist in this set, so each image is its own group.
                samples.append(Sample(image, label=name, defective=is_bad, mask=mask, group=image.stem,
                                      flaw_types=(name,) if is_bad else ()))
    return make_index(root, "magnetic_tile", samples, order_classes(classes, defective), defective)
