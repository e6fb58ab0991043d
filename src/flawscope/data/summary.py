"""What a dataset holds and what is wrong with it, before any training: `summarize(index)`.

Reads image and mask headers and hashes every image file (SHA-1). `decode=True` (the default for datasets of
at most DECODE_MAX_IMAGES images) also decodes every image and mask file in full, so a file whose header
reads but whose pixels do not (a truncated JPEG) is named among the problems too. `deep=True` also decodes
masks: it decides `defective` for samples that only have a mask, and flags defective samples with empty
masks and ok samples with defect pixels.

Every bad file is listed; none stops the summary. Load the index with `on_bad_file="skip"` so that files
the indexer cannot use are listed (as "skipped") rather than raised.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from flawscope.data.sample import DatasetIndex, RleMask, Sample
from flawscope.errors import FlawscopeError, ImageReadError

if TYPE_CHECKING:
    pass

# Datasets up to this many image files are decoded in full by default (a few seconds); larger ones on request.
DECODE_MAX_IMAGES = 2000

Severity = Literal["error", "warning", "info"]

EMPTY_CLASS_REASON = "empty class folder"
UNLABELED = "(unlabeled)"
NO_SPLIT = "(none)"


@dataclass(frozen=True)
class Problem:
    """One finding about a dataset.

    Attributes:
        kind: machine-readable kind: skipped, empty_class, single_class, unreadable, bad_mask,
            mask_size_mismatch, crop_outside_image, box_outside_image, duplicate, duplicate_across_splits,
            duplicate_across_groups, duplicate_conflicting_labels, empty_mask_on_defective, mask_on_ok.
        severity: "error" (results would be wrong: leaks, unreadable files), "warning", or "info".
        message: one line a person can act on.
        paths: the files concerned.
    """

    kind: str
    severity: Severity
    message: str
    paths: tuple[str, ...] = ()


@dataclass
class DatasetSummary:
    """Counts, histograms and problems of one indexed dataset (`to_dict()` for JSON).

    Attributes:
        root, format: where the dataset is and which source indexed it.
        num_samples: samples in the index (patches count one each).
        num_images: distinct image files.
        classes: samples per class, in the index's class order (classes without samples show 0).
        defective_classes: class names that count as defective.
        splits: samples per fixed split ("(none)" when the dataset fixes none).
        defective, ok, unknown: samples by `Sample.defective` (with deep=True, decided from masks too).
        num_groups: distinct groups (units that must not span train and test).
        image_sizes: images per "HxW" size, most common first.
        bit_depths, channels: images per bit depth / channel count.
        masks: samples with a mask.
        boxes, images_with_boxes: defect boxes in all, and samples having at least one.
        flaw_types: samples per flaw type.
        skipped: files the index left out.
        problems: everything worth a look, errors first.
        deep: whether masks were decoded to decide defect status.
        decoded: whether every image and mask file was decoded in full (not only its header).
    """

    root: str
    format: str
    num_samples: int
    num_images: int
    classes: dict[str, int]
    defective_classes: list[str]
    splits: dict[str, int]
    defective: int
    ok: int
    unknown: int
    num_groups: int
    image_sizes: dict[str, int]
    bit_depths: dict[int, int]
    channels: dict[int, int]
    masks: int
    boxes: int
    images_with_boxes: int
    flaw_types: dict[str, int]
    skipped: int
    problems: list[Problem] = field(default_factory=list)
    deep: bool = False
    decoded: bool = False

    def to_dict(self) -> dict:
        """Plain dict (JSON friendly: string keys, lists)."""
        d = asdict(self)
        d["bit_depths"] = {str(k): v for k, v in self.bit_depths.items()}
        d["channels"] = {str(k): v for k, v in self.channels.items()}
        d["problems"] = [{**asdict(p), "paths": list(p.paths)} for p in self.problems]
        return d

    def problems_of(self, kind: str) -> list[Problem]:
        """The problems of one kind."""
        return [p for p in self.problems if p.kind == kind]

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def _mask_shape(ref: object) -> tuple[int, int] | None:
    if isinstance(ref, RleMask):
        return ref.height, ref.width
    if isinstance(ref, tuple) and ref:
        return ref[0].height, ref[0].width
    return None


def _sorted_counts(counter: Counter) -> dict:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def _decode_problems(samples: list[Sample], readable: set[Path]) -> list[Problem]:
    """Decode every image (with a readable header) and mask file in full; one problem per file that fails."""
    from flawscope.data.io import load_mask, read_raw

    problems: list[Problem] = []
    for path in sorted(readable):
        try:
            read_raw(path)
        except FlawscopeError as err:
            problems.append(Problem("unreadable", "error", f"{err}; its header reads but its pixels do not "
                                    "(a truncated or corrupt file): re-export or remove it", (str(path),)))
    masks = sorted({(s.mask, s.image) for s in samples if isinstance(s.mask, Path) and s.image in readable},
                   key=lambda m: (str(m[0]), str(m[1])))
    seen: set[Path] = set()
    for mask, image in masks:
        if mask in seen:  # patches of one image share its mask
            continue
        seen.add(mask)
        try:
            load_mask(mask)
        except FlawscopeError as err:
            kind = "unreadable" if isinstance(err, ImageReadError) else "bad_mask"  # e.g. values not binary
            problems.append(Problem(kind, "error", f"mask of {image}: {err}", (str(image), str(mask))))
    return problems


def summarize(index: DatasetIndex, deep: bool = False, decode: bool | None = None) -> DatasetSummary:
    """Summarize an index: counts, image size/bit-depth histograms, and problems (see `Problem.kind`).

    Args:
        index: from `load_dataset` (with on_bad_file="skip", so that every bad file is listed).
        deep: also decode masks (slower): decide unknown `defective` from masks, check masks against labels.
        decode: decode every image and mask file in full, naming each one that fails; None = decode when
            the index has at most DECODE_MAX_IMAGES image files.
    """
    from flawscope.data.io import file_digest, image_info, load_mask

    samples = index.samples
    problems: list[Problem] = []

    # Files the index left out: results would be wrong to ignore them (training stops at them by default),
    # except empty class folders, which are their own kind.
    for s in index.skipped:
        if s.reason.startswith(EMPTY_CLASS_REASON):
            problems.append(Problem("empty_class", "warning", f"class folder {s.path} holds no images; "
                                    "it was left out of the classes", (str(s.path),)))
        else:
            problems.append(
                Problem("skipped", "error", f"{s.path} was skipped: {s.reason}", (str(s.path),)))

    # Headers of every distinct image.
    infos = {}
    for path in sorted({s.image for s in samples}):
        try:
            infos[path] = image_info(path)
        except FlawscopeError as err:
            problems.append(Problem("unreadable", "error", str(err), (str(path),)))

    # Pixels of every file whose header reads (a truncated JPEG has a good header).
    if decode is None:
        decode = len({s.image for s in samples}) <= DECODE_MAX_IMAGES
    if decode:
        problems.extend(_decode_problems(samples, set(infos)))
    unreadable = {Path(p) for q in problems if q.kind in ("unreadable", "bad_mask") for p in q.paths[-1:]}

    # Masks against their images, crops and boxes against image bounds.
    checked_masks: set[tuple[Path, object]] = set()
    boxes_outside: list[str] = []
    for s in samples:
        info = infos.get(s.image)
        if info is None:
            continue
        size = (info.height, info.width)
        if s.mask is not None and (s.image, s.mask) not in checked_masks:  # patches share a mask
            checked_masks.add((s.image, s.mask))
            shape = _mask_shape(s.mask)
            if isinstance(s.mask, Path) and s.mask not in unreadable:  # else named above already
                try:
                    m = image_info(s.mask)
                    shape = (m.height, m.width)
                except FlawscopeError as err:
                    problems.append(Problem("unreadable", "error", str(err), (str(s.mask),)))
            if shape is not None and shape != size:
                problems.append(Problem(
                    "mask_size_mismatch", "error",
                    f"mask {s.mask if isinstance(s.mask, Path) else 'RLE'} is {shape[0]}×{shape[1]} "
                    "but image "
                    f"{s.image} is {size[0]}×{size[1]}; masks must match their image",
                    (str(s.image),) + ((str(s.mask),) if isinstance(s.mask, Path) else ()),
                ))
        if s.crop is not None:
            top, left, h, w = s.crop
            if top + h > info.height or left + w > info.width:
                problems.append(Problem(
                    "crop_outside_image", "error",
                    f"crop {s.crop} of {s.image} reaches past the image ({info.height}×{info.width})",
                    (str(s.image),),
                ))
        if any(b.x1 < 0 or b.y1 < 0 or b.x2 > info.width or b.y2 > info.height for b in s.boxes):
            boxes_outside.append(str(s.image))
    if boxes_outside:
        problems.append(Problem(
            "box_outside_image", "warning",
            f"{len(boxes_outside)} images have defect boxes reaching outside the image (e.g. "
            f"{', '.join(boxes_outside[:3])}); check the annotation's coordinate convention",
            tuple(sorted(set(boxes_outside))),
        ))

    # Duplicate files by content: a copy on both sides of a split inflates test scores.
    by_path: dict[Path, list[Sample]] = defaultdict(list)
    for s in samples:
        by_path[s.image].append(s)
    by_digest: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(by_path):
        if path not in infos:
            continue
        try:
            by_digest[file_digest(path)].append(path)
        except FlawscopeError as err:
            problems.append(Problem("unreadable", "error", str(err), (str(path),)))
    for paths in by_digest.values():
        if len(paths) < 2:
            continue
        names = tuple(str(p) for p in paths)
        copies = [s for p in paths for s in by_path[p]]
        splits = sorted({s.split for s in copies if s.split is not None})
        groups = sorted({s.group for s in copies})
        labels = sorted({s.label for s in copies})
        listed = ", ".join(names)
        problems.append(Problem("duplicate", "warning", f"{len(paths)} identical files: {listed}", names))
        if len(splits) > 1:
            problems.append(Problem(
                "duplicate_across_splits", "error",
                f"identical files sit in splits {', '.join(splits)}: {listed}; test scores would leak; "
                "remove the copies", names))
        if len(groups) > 1:
            problems.append(Problem(
                "duplicate_across_groups", "warning",
                f"identical files belong to groups {', '.join(groups)}: a group split may put copies on "
                "both sides; "
                "remove the copies or give them one group", names))
        if len(labels) > 1:
            problems.append(Problem(
                "duplicate_conflicting_labels", "error",
                f"identical files are labelled {', '.join(repr(x) for x in labels)}: {listed}", names))

    # Defect status; deep mode decodes masks to decide unknowns and cross-check labels.
    status: list[bool | None] = [s.defective for s in samples]
    if deep:
        last: tuple[object, object] = (None, None)  # patches of one image come together: decode its mask once
        for i, s in enumerate(samples):
            if s.mask is None or s.image not in infos:
                continue
            if isinstance(s.mask, Path) and s.mask in unreadable:
                continue  # named above already
            if last[0] != s.mask:
                try:
                    last = (s.mask, load_mask(s.mask))
                except FlawscopeError as err:
                    problems.append(Problem("unreadable", "error", str(err), (str(s.mask),)))
                    continue
            mask = last[1]
            if s.crop is not None:
                top, left, h, w = s.crop
                mask = mask[top: top + h, left: left + w]
            has_defect = bool(mask.any())
            if s.defective is None:
                status[i] = has_defect
            elif s.defective and not has_defect:
                problems.append(Problem("empty_mask_on_defective", "warning",
                                        f"{s.image} is labelled defective but its mask is empty",
                                        (str(s.image),)))
            elif not s.defective and has_defect:
                problems.append(Problem("mask_on_ok", "error",
                                        f"{s.image} is labelled {s.label or 'ok'!r} (defect-free) but its "
                                        "mask has defect pixels", (str(s.image),)))

    class_counts = Counter(s.label or UNLABELED for s in samples)
    classes = {c: class_counts.pop(c, 0) for c in index.classes}
    classes.update(_sorted_counts(class_counts))
    populated = [c for c, n in classes.items() if n and c != UNLABELED]
    if len(populated) != 1:  # with one class left, the single-class warning says it all
        problems.extend(Problem("empty_class", "warning", f"class {name!r} has no images", ())
                        for name, n in classes.items() if n == 0)
    else:
        problems.append(Problem(
            "single_class", "warning",
            f"only class {populated[0]!r} has images; training a classifier needs images of at least two "
            "classes (patch or segmentation training may still work)", ()))

    severity_order = {"error": 0, "warning": 1, "info": 2}
    problems.sort(key=lambda p: severity_order[p.severity])
    images = list(infos.values())
    return DatasetSummary(
        root=str(index.root),
        format=index.format,
        num_samples=len(samples),
        num_images=len(by_path),
        classes=classes,
        defective_classes=sorted(index.defective_classes),
        splits=_sorted_counts(Counter(s.split or NO_SPLIT for s in samples)),
        defective=sum(d is True for d in status),
        ok=sum(d is False for d in status),
        unknown=sum(d is None for d in status),
        num_groups=len({s.group for s in samples}),
        image_sizes=_sorted_counts(Counter(f"{i.height}x{i.width}" for i in images)),
        bit_depths=_sorted_counts(Counter(i.bit_depth for i in images)),
        channels=_sorted_counts(Counter(i.channels for i in images)),
        masks=sum(s.has_mask for s in samples),
        boxes=sum(len(s.boxes) for s in samples),
        images_with_boxes=sum(bool(s.boxes) for s in samples),
        flaw_types=_sorted_counts(Counter(t for s in samples for t in s.flaw_types)),
        skipped=len(index.skipped),
        problems=problems,
        deep=deep,
        decoded=decode,
    )
