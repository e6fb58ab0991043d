"""`dagm`: DAGM 2007 `Class1/{Train,Test}/*.PNG`, `Label/Labels.txt` and label masks `Label/XXXX_label.PNG`.

Labels.txt rows are tab-separated: index, defective (0/1), image file, 0, label file (0 when none); a first
line with a single number is a header. The root may be one ClassN folder or the folder holding them. Each
image is its own group (file names 0001.PNG repeat across classes and splits).
"""

from __future__ import annotations

from pathlib import Path

from flawscope.data.sample import DatasetIndex, Sample
from flawscope.data.sources import register_source
from flawscope.data.sources._common import BINARY_CLASSES, SourceContext, binary_label, make_index, subdirs
from flawscope.errors import DatasetError

_SPLITS = {"train": "train", "test": "test"}


def _split_dirs(d: Path) -> list[tuple[Path, str]]:
    """(folder, split) pairs of a class folder; the folder name's case varies between releases."""
    found = []
    for sub in subdirs(d):
        split = _SPLITS.get(sub.name.lower())
        if split and (sub / "Label" / "Labels.txt").is_file():
            found.append((sub, split))
    return found


def _class_dirs(root: Path) -> list[Path]:
    if _split_dirs(root):
        return [root]
    return [d for d in subdirs(root) if _split_dirs(d)]


def _detect(root: Path) -> bool:
    return root.is_dir() and bool(_class_dirs(root))


def read_labels(path: Path) -> list[tuple[str, bool, str | None]]:
    """(image file, defective, label file or None) per row of a DAGM `Labels.txt`."""
    rows = []
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        fields = line.split()
        if len(fields) <= 1:
            continue  # blank line or the one-number header
        if len(fields) != 5 or fields[1] not in ("0", "1"):
            raise DatasetError(
                f"{path} line {line_no}: expected 5 tab-separated fields "
                "'index defective(0/1) image 0 label', "
                f"got {line.strip()!r}"
            )
        defective = fields[1] == "1"
        rows.append((fields[2], defective, fields[4] if defective and fields[4] != "0" else None))
    return rows


@register_source("dagm", detect=_detect, priority=20)
def load_dagm(root: Path, ctx: SourceContext) -> DatasetIndex:
    """DAGM 2007: ClassN/{Train,Test}/*.PNG + Label/Labels.txt rows and XXXX_label.PNG masks."""
    class_dirs = _class_dirs(root)
    if not class_dirs:
        raise DatasetError(f"{root} holds no DAGM class folder (ClassN/Train/Label/Labels.txt)")
    samples: list[Sample] = []
    for class_dir in class_dirs:
        for split_dir, split in _split_dirs(class_dir):
            for name, defective, label in read_labels(split_dir / "Label" / "Labels.txt"):
                image = split_dir / name
                mask = split_dir / "Label" / label if label else None
                if not ctx.usable(image, mask):
                    continue
                samples.append(Sample(
                    image, label=binary_label(defective), defective=defective, mask=mask,
                    group=f"{class_dir.name}/{split_dir.name}/{image.stem}", split=split,
                    meta=(("class", class_dir.name),),
                ))
    return make_index(root, "dagm", samples, BINARY_CLASSES, {"defect"})
