"""`folders`: one sub-folder per class (`ok/`, `defect/`, `crack/`, ...), images directly inside.

Split folders above the class folders (`train/ok/`, `val/ok/`, `test/defect/`) fix `Sample.split`.
Classes keep the user's names; which are defective comes from `defective_classes`, else the ok-name rule
(ok, good, free, normal, no_defect, non_defective mean defect-free). An empty class folder is left out of
the classes and listed in `index.skipped`.
"""

from __future__ import annotations

from pathlib import Path

from flawscope.data.sample import DatasetIndex, Sample, SkippedFile
from flawscope.data.sources import register_source
from flawscope.data.sources._common import SourceContext, list_images, make_index, order_classes, subdirs
from flawscope.errors import DatasetError

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _split_layout(root: Path) -> list[tuple[Path, str | None]]:
    """(folder of class folders, split) pairs: the split folders if every sub-folder is one, else root."""
    dirs = subdirs(root)
    if dirs and all(d.name.lower() in SPLIT_FOLDERS for d in dirs):
        return [(d, SPLIT_FOLDERS[d.name.lower()]) for d in dirs]
    return [(root, None)]


def _detect(root: Path) -> bool:
    return root.is_dir() and any(list_images(d) for base, _ in _split_layout(root) for d in subdirs(base))


@register_source("folders", detect=_detect, priority=90)
def load_folders(root: Path, ctx: SourceContext) -> DatasetIndex:
    """Class folders: root/<class>/*.png (or root/<split>/<class>/); ok-like names are defect-free."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; the folders format needs root/<class>/<images>")
    found: dict[str, list[tuple[Path, str | None]]] = {}
    empty: list[SkippedFile] = []
    for base, split in _split_layout(root):
        for class_dir in subdirs(base):
            images = list_images(class_dir)
            if not images:
                # An empty folder would become a class no image can teach; list it instead of adding it.
                empty.append(SkippedFile(class_dir, "empty class folder: no images, class left out"))
            for path in images:
                found.setdefault(class_dir.name, []).append((path, split))
    if not found:
        raise DatasetError(
            f"no class folder in {root} holds images"
            + (f" (empty: {', '.join(s.path.name for s in empty)})" if empty else "")
            + "; put images in root/<class>/ folders, e.g. ok/ and defect/"
        )
    defective = ctx.resolve_defective(found, root)
    samples = [
        # Stems like 001.png repeat across class (and split) folders without being the same part.
        Sample(path, label=name, defective=name in defective, split=split,
               group=path.relative_to(root).with_suffix("").as_posix())
        for name, files in found.items() for path, split in files if ctx.usable(path)
    ]
    index = make_index(root, "folders", samples, order_classes(found, defective), defective)
    # A class folder empty in one split but filled in another is not an empty class.
    index.skipped = [s for s in empty if s.path.name not in found]
    return index
