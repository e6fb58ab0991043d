"""`manifest`: a CSV of images, `path,label[,mask][,group][,split][,flaw_types][,boxes][,defective]`.

Paths (image and mask) are relative to the CSV's folder, or absolute. Columns:
    path: image file (required).
    label: class name (required column; a cell may be empty for an unlabeled image).
    mask: mask file; empty = no mask.
    group: the unit that must not span splits; empty = the image stem.
    split: train, val or test; empty = not fixed.
    flaw_types: ";"-separated flaw types, e.g. "pore;crack".
    boxes: ";"-separated boxes "x1 y1 x2 y2" (optionally a fifth token, the box label).
    defective: 1/0 (true/false); empty = from the label (defective_classes or ok_classes, else the
        ok-name rule).
    crop: "top left height width" when the row is a patch of its image.
    meta_<key>: any extra per-sample fact, kept in Sample.meta under <key>.
This is also what the synthetic generator writes (`manifest.csv`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from flawscope.data.sample import Box, DatasetIndex, Sample
from flawscope.data.sources import register_source
from flawscope.data.sources._common import SourceContext, make_index, order_classes
from flawscope.errors import DatasetError

MANIFEST_NAME = "manifest.csv"
COLUMNS = ("path", "label", "mask", "group", "split", "flaw_types", "boxes", "defective", "crop")
REQUIRED = ("path", "label")
META_PREFIX = "meta_"
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def manifest_path(root: Path) -> Path | None:
    """The manifest file `root` names: the .csv itself, or `root/manifest.csv`."""
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    if root.is_dir() and (root / MANIFEST_NAME).is_file():
        return root / MANIFEST_NAME
    return None


def _detect(root: Path) -> bool:
    return manifest_path(root) is not None


def _parse_boxes(text: str, where: str) -> tuple[Box, ...]:
    boxes = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        tokens = part.split()
        try:
            if len(tokens) not in (4, 5):
                raise ValueError(f"{len(tokens)} values")
            coords = [float(t) for t in tokens[:4]]
        except ValueError:
            raise DatasetError(
                f"{where}: box {part!r} is not 'x1 y1 x2 y2' (optionally followed by a label)"
            ) from None
        try:
            boxes.append(Box(*coords, label=tokens[4] if len(tokens) == 5 else "defect"))
        except DatasetError as err:
            raise DatasetError(f"{where}: {err}") from None
    return tuple(boxes)


def _parse_crop(text: str, where: str) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    try:
        top, left, height, width = (int(t) for t in text.split())
    except ValueError:
        raise DatasetError(f"{where}: crop {text!r} is not 'top left height width' (4 integers)") from None
    if height <= 0 or width <= 0 or top < 0 or left < 0:
        raise DatasetError(f"{where}: crop {text!r} needs top, left >= 0 and height, width > 0")
    return top, left, height, width


def _parse_defective(text: str, where: str) -> bool | None:
    value = text.strip().lower()
    if not value:
        return None
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise DatasetError(f"{where}: defective {text!r} is not 1/0 (true/false); leave it empty to derive it")


def _resolve(base: Path, text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else base / p


@register_source("manifest", detect=_detect, priority=0)
def load_manifest(root: Path, ctx: SourceContext) -> DatasetIndex:
    """Manifest CSV: path,label[,mask,group,split,flaw_types,boxes,defective,crop,meta_*] (synth output)."""
    path = manifest_path(root)
    if path is None:
        raise DatasetError(f"{root} is neither a .csv file nor a folder holding {MANIFEST_NAME}")
    base = path.parent
    with path.open(newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets add a BOM
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        unknown = [c for c in cols if c not in COLUMNS and not c.startswith(META_PREFIX)]
        missing = [c for c in REQUIRED if c not in cols]
        if unknown or missing:
            problem = f"unknown columns {unknown}" if unknown else f"missing columns {missing}"
            raise DatasetError(
                f"manifest {path}: {problem}; valid columns are {', '.join(COLUMNS)} "
                f"(path and label required) and {META_PREFIX}<name> for extra facts"
            )
        reader.fieldnames = cols
        rows = list(enumerate(reader, start=2))
    parsed = []
    for line, row in rows:
        where = f"manifest {path} line {line}"
        cell = {k: (row.get(k) or "").strip() for k in cols}
        if not cell["path"]:
            raise DatasetError(f"{where}: empty path")
        split = cell.get("split") or None
        if split == "validation":
            split = "val"
        if split not in (None, "train", "val", "test"):
            raise DatasetError(f"{where}: split {split!r} is not train, val or test (or empty)")
        parsed.append((where, cell, split, _parse_defective(cell.get("defective", ""), where)))
    labels = {cell["label"] for _, cell, _, _ in parsed if cell["label"]}
    if ctx.defective_classes is None and ctx.ok_classes is None and "defective" in cols:
        # The defective column decides: a class is defective when all its rows with a value say 1;
        # classes with no value in any row fall back to the ok-name rule.
        flags: dict[str, set[bool]] = {}
        for _, cell, _, flag in parsed:
            if cell["label"] and flag is not None:
                flags.setdefault(cell["label"], set()).add(flag)
        defective = frozenset({lab for lab, f in flags.items() if f == {True}}
                              | {lab for lab in labels - flags.keys() if ctx.is_defective(lab)})
    else:
        defective = ctx.resolve_defective(labels, path)
    samples: list[Sample] = []
    for where, cell, split, is_bad in parsed:
        image = _resolve(base, cell["path"])
        mask = _resolve(base, cell["mask"]) if cell.get("mask") else None
        if is_bad is None and cell["label"]:
            is_bad = cell["label"] in defective
        sample = Sample(
            image, label=cell["label"], defective=is_bad, mask=mask,
            boxes=_parse_boxes(cell.get("boxes", ""), where), group=cell.get("group", ""),
            flaw_types=tuple(t.strip() for t in cell.get("flaw_types", "").split(";") if t.strip()),
            split=split, crop=_parse_crop(cell.get("crop", ""), where),
            meta=tuple((k[len(META_PREFIX):], v) for k, v in cell.items() if k.startswith(META_PREFIX) and v),
        )
        if ctx.usable(image, mask):
            samples.append(sample)
    return make_index(path, "manifest", samples, order_classes(labels, defective), defective)


def write_manifest(index: DatasetIndex, path: str | Path) -> Path:
    """Write an index as a manifest CSV that `load_dataset` reads back (RLE masks are refused)."""
    path = Path(path)
    if any(s.mask is not None and not isinstance(s.mask, Path) for s in index.samples):
        raise DatasetError(
            f"cannot write {path}: some masks are run-length encoded; write them as files first (or keep the "
            "original dataset and save only the split)"
        )
    base = path.parent.resolve()
    meta_keys = sorted({k for s in index.samples for k, _ in s.meta})

    def rel(p: Path) -> str:
        p = p.resolve()
        return str(p.relative_to(base)) if p.is_relative_to(base) else str(p)

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, *(META_PREFIX + k for k in meta_keys)])
        for s in index.samples:
            meta = dict(s.meta)
            writer.writerow([
                rel(s.image), s.label, rel(s.mask) if isinstance(s.mask, Path) else "",
                s.group, s.split or "",
                ";".join(s.flaw_types),
                ";".join(f"{b.x1:g} {b.y1:g} {b.x2:g} {b.y2:g} {b.label}" for b in s.boxes),
                "" if s.defective is None else int(s.defective),
                " ".join(map(str, s.crop)) if s.crop else "",
                *(meta.get(k, "") for k in meta_keys),
            ])
    return path
