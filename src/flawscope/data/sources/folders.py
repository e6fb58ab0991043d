"""`folders`: one sub-folder per class (`ok/`, `defect/`, `crack/`, ...), images directly inside."""

from __future__ import annotations

from pathlib import Path

from flawscope.data.sample import DatasetIndex, Sample, SkippedFile
from flawscope.data.sources import register_source
from flawscope.data.sources._common import SourceContext, list_images, make_index, order_classes, subdirs
from flawscope.errors import DatasetError


def _detect(root: Path) -> bool:
    return root.is_dir() and any(list_images(d) for d in subdirs(root))


@register_source("folders", detect=_detect, priority=90)
def load_folders(root: Path, ctx: SourceContext) -> DatasetIndex:
    """Class folders: root/<class>/*.png; classes keep their names, ok-like names are non-defective."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; the folders format needs root/<class>/<images>")
    samples: list[Sample] = []
    classes: list[str] = []
    empty: list[SkippedFile] = []
    for class_dir in subdirs(root):
        images = list_images(class_dir)
        if not images:
            # An empty folder would become a class no image can teach; list it instead of adding it.
            empty.append(SkippedFile(class_dir, "empty class folder: no images, class left out"))
            continue
        classes.append(class_dir.name)
        defective = ctx.is_defective(class_dir.name)
        for path in images:
            if ctx.usable(path):
                # Stems like 001.png repeat across class folders without being the same part.
                samples.append(Sample(path, label=class_dir.name, defective=defective,
                                      group=f"{class_dir.name}/{path.stem}"))
    if not classes:
        raise DatasetError(
            f"no class folder in {root} holds images"
            + (f" (empty: {', '.join(s.path.name for s in empty)})" if empty else "")
            + "; put images in root/<class>/ folders, e.g. ok/ and defect/"
        )
    defective = ctx.resolve_defective(classes, root)
    index = make_index(root, "folders", samples, order_classes(classes, defective), defective)
    index.skipped = empty
    return index
