"""The one record every dataset format is turned into."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flawscope.errors import DatasetError


@dataclass(frozen=True)
class Box:
    """An axis-aligned defect box in pixel coordinates (x = column, y = row), corners inclusive-exclusive."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = "defect"

    def __post_init__(self) -> None:
        if not (self.x2 > self.x1 and self.y2 > self.y1):
            raise DatasetError(
                f"box ({self.x1}, {self.y1}, {self.x2}, {self.y2}) has no area; expected x2 > x1 and y2 > y1"
            )

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


@dataclass(frozen=True)
class RleMask:
    """A run-length encoded mask (Severstal/Kaggle convention: 1-based starts, column-major order)."""

    rle: str
    height: int
    width: int


MaskRef = Path | RleMask | tuple[RleMask, ...]


@dataclass(frozen=True)
class Sample:
    """One image with everything known about it.

    Attributes:
        image: path of the image file.
        label: class name (e.g. "ok", "defect", "crazing"); "" when unknown (a mask-only or unlabeled image).
        defective: whether the image shows a flaw; None when unknown.
        mask: binary defect mask (a file, or RLE runs whose union is the mask); None when not annotated.
        boxes: defect boxes; empty when none are annotated.
        group: the unit that must not span train and test (series, part, source radiograph).
        flaw_types: multi-label flaw types present (e.g. ("pore", "crack")); empty when unknown or none.
        split: split fixed by the dataset itself ("train", "val", "test"), or None.
        crop: (top, left, height, width) when the sample is a patch of its image; None = the whole image.
        meta: extra per-sample facts (series, image index, pixel size in mm, ...), strings only.
    """

    image: Path
    label: str = ""
    defective: bool | None = None
    mask: MaskRef | None = None
    boxes: tuple[Box, ...] = ()
    group: str = ""
    flaw_types: tuple[str, ...] = ()
    split: str | None = None
    crop: tuple[int, int, int, int] | None = None
    meta: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.image, Path):
            object.__setattr__(self, "image", Path(self.image))
        if isinstance(self.mask, str):
            object.__setattr__(self, "mask", Path(self.mask))
        if not self.group:
            object.__setattr__(self, "group", self.image.stem)
        if self.split not in (None, "train", "val", "test"):
            raise DatasetError(f"sample {self.image}: split {self.split!r} is not one of train, val, test")

    @property
    def has_mask(self) -> bool:
        return self.mask is not None

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """Value of one meta key."""
        return dict(self.meta).get(key, default)


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a dataset, and why; listed in every run's record."""

    path: Path
    reason: str


def write_skipped(path: str | Path, skipped: Sequence[SkippedFile]) -> Path:
    """skipped.csv: path, reason per skipped file (a header only when nothing was skipped)."""
    import csv

    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        for s in skipped:
            writer.writerow([str(s.path), s.reason])
    return path


@dataclass
class DatasetIndex:
    """All samples found in one dataset, its class names and what was skipped.

    Attributes:
        root: dataset folder (or manifest file).
        format: name of the source format that indexed it.
        samples: the samples, in a deterministic order.
        classes: class names in index order; for binary datasets ["ok", "defect"] by convention.
        defective_classes: the class names that count as defective.
        skipped: files left out (only under on_bad_file="skip"), each with its reason.
    """

    root: Path
    format: str
    samples: list[Sample]
    classes: list[str]
    defective_classes: frozenset[str]
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2

    def class_index(self, label: str) -> int:
        """Index of a class name, with a clear error for unknown names."""
        try:
            return self.classes.index(label)
        except ValueError:
            raise DatasetError(f"class {label!r} is not one of {self.classes}") from None

    def subset(self, indices: list[int]) -> DatasetIndex:
        """A new index holding only the given samples (same classes, same skipped list)."""
        return DatasetIndex(
            self.root, self.format, [self.samples[i] for i in indices], list(self.classes),
            self.defective_classes, list(self.skipped),
        )
