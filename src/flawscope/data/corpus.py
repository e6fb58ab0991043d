"""Pre-training corpora: labelled CSVs (CheXpert-style), class folders, unlabelled folders, synthetic images.

A corpus is a flat list of images with multi-hot targets (or none) and a train/val assignment that never
lets a group (patient, series, part) span both. `CorpusDataset` turns it into supervised batches,
`TwoViewDataset` into the two augmented views of self-supervised pre-training; both decode through a
`DecodeCache`, crop at native resolution (or resize) and seed every random choice from (seed, epoch, index).
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from flawscope.data.cache import DecodeCache
from flawscope.data.config import IntensityConfig, PreprocessConfig
from flawscope.data.sample import SkippedFile
from flawscope.data.tiling import size_pair
from flawscope.data.transforms import build_eval_transform, sample_seed
from flawscope.errors import ConfigError, DatasetError, did_you_mean

__all__ = [
    "CHEXPERT_METADATA",
    "Corpus",
    "CorpusAugment",
    "CorpusDataset",
    "CorpusItem",
    "TwoViewDataset",
    "augment_view",
    "carve_val",
    "load_class_folders",
    "load_label_csv",
    "load_unlabelled",
    "synthetic_corpus",
]

CORPUS_SPLITS = ("train", "val")
#: Columns of a CheXpert-style CSV that are facts about the image, not labels (compared case-insensitively).
CHEXPERT_METADATA = frozenset({
    "path", "sex", "age", "frontal/lateral", "ap/pa", "view", "patient", "patient id", "patient_id",
    "patientid", "study", "split",
})
SYNTH_MARKER = "corpus_synth.json"
_DEFAULT_INTENSITY = IntensityConfig()  # frozen, so one shared default is safe
_PATIENT = re.compile(r"(patient\d+)", re.IGNORECASE)
_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test"}
Uncertain = Literal["positive", "negative", "ignore"]
OnMissing = Literal["error", "skip"]


@dataclass(frozen=True)
class CorpusItem:
    """One pre-training image.

    Attributes:
        path: image file.
        labels: multi-hot targets, one per `Corpus.label_names`; NaN = unknown (masked out of the loss);
            () for an unlabelled corpus.
        split: "train" or "val".
        group: patient / series / part; val is carved by group, so a group is never on both sides.
    """

    path: Path
    labels: tuple[float, ...] = ()
    split: str = "train"
    group: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        if self.split not in CORPUS_SPLITS:
            raise DatasetError(f"corpus item {self.path}: split {self.split!r} is not one of train, val")
        object.__setattr__(self, "labels", tuple(float(v) for v in self.labels))
        if not self.group:
            object.__setattr__(self, "group", self.path.stem)


@dataclass
class Corpus:
    """The images of one pre-training corpus, their label names, where they came from and what was left out.

    Attributes:
        root: the corpus folder (or CSV file).
        items: the images, in a deterministic order.
        label_names: names of the targets, in `CorpusItem.labels` order; () for an unlabelled corpus.
        source: "csv", "folders", "unlabelled" or "synthetic".
        skipped: files (or rows) left out, each with its reason.
    """

    root: Path
    items: list[CorpusItem]
    label_names: tuple[str, ...]
    source: str
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def part(self, split: str) -> list[CorpusItem]:
        """The items of one split ("train" or "val"), in corpus order."""
        if split not in CORPUS_SPLITS:
            raise ConfigError(f"corpus split {split!r} is not one of {', '.join(CORPUS_SPLITS)}")
        return [it for it in self.items if it.split == split]

    def positives(self) -> dict[str, int]:
        """Number of train items positive (label 1) for each label; unknown (NaN) labels are not counted."""
        counts = dict.fromkeys(self.label_names, 0)
        for it in self.items:
            if it.split == "train":
                for name, v in zip(self.label_names, it.labels, strict=True):
                    counts[name] += v == 1.0
        return counts

    def groups(self, split: str) -> set[str]:
        """The groups of one split."""
        return {it.group for it in self.part(split)}

    def summary(self) -> str:
        """One line: source, sizes, groups and label positives."""
        n_train, n_val = len(self.part("train")), len(self.part("val"))
        text = (f"{self.source} corpus {self.root}: {n_train} train / {n_val} val images, "
                f"{len(self.groups('train'))} / {len(self.groups('val'))} groups")
        if self.label_names:
            text += "; train positives " + ", ".join(f"{k} {v}" for k, v in self.positives().items())
        if self.skipped:
            text += f"; {len(self.skipped)} skipped"
        return text

    def write_split(self, path: str | Path) -> Path:
        """split.csv of the run: path, split, group and one column per label (blank = unknown)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "split", "group", *self.label_names])
            for it in self.items:
                writer.writerow([str(it.path), it.split, it.group,
                                 *("" if math.isnan(v) else f"{v:g}" for v in it.labels)])
        return path


# --------------------------------------------------------------------------------------------------------
# Splitting


def _check_val_fraction(val_fraction: float) -> None:
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")


def carve_val(groups: Sequence[str], val_fraction: float, seed: int = 0) -> list[bool]:
    """Which items go to val: whole groups, in a seeded order, until val holds about `val_fraction` of items.

    A group joins val when it brings the val count closer to the target; the first group always does (so a
    positive fraction never gives an empty val) and at least one group always stays in train.

    Args:
        groups: the group of each item.
        val_fraction: target share of items in val, in [0, 1).
        seed: same seed and groups, same assignment.

    Returns:
        One flag per item, True = val.
    """
    _check_val_fraction(val_fraction)
    sizes = Counter(groups)
    names = sorted(sizes)
    if val_fraction == 0 or len(names) < 2:
        return [False] * len(groups)
    target = val_fraction * len(groups)
    val: set[str] = set()
    count = 0
    for j in np.random.default_rng(seed).permutation(len(names)):
        if len(val) == len(names) - 1 or count >= target:
            break
        name = names[j]
        if val and abs(count + sizes[name] - target) >= abs(count - target):
            continue  # too big for what is left of the target; a smaller group later may fit
        val.add(name)
        count += sizes[name]
    return [g in val for g in groups]


def _split_by_group(groups: Sequence[str], val_fraction: float, seed: int) -> list[str]:
    """"train"/"val" per item: by group when there are two groups or more, else image by image."""
    units = list(groups) if len(set(groups)) >= 2 else [f"#{i}" for i in range(len(groups))]
    return ["val" if v else "train" for v in carve_val(units, val_fraction, seed)]


def _check_positives(corpus: Corpus, fix: str) -> None:
    missing = [name for name, n in corpus.positives().items() if n == 0]
    if missing:
        raise DatasetError(
            f"{corpus.root}: label(s) {missing} have no positive image in the train split, so nothing can "
            f"teach them; {fix}"
        )


# --------------------------------------------------------------------------------------------------------
# CSV of labels (CheXpert-style)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DatasetError(f"label CSV {path} does not exist; give the path of the train.csv (or valid.csv)")
    with path.open(newline="", encoding="utf-8-sig") as f:  # utf-8-sig: Excel's byte-order mark
        reader = csv.DictReader(f)
        header = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise DatasetError(f"{path} line {reader.line_num}: it has a different number of fields from "
                                   f"the header ({len(header)} columns); fix or remove that row")
            rows.append(row)
    if not header or not rows:
        what = "no header" if not header else "a header but no rows"
        raise DatasetError(f"label CSV {path} is empty ({what}); expected a header (the path column, label "
                           "columns) and one row per image")
    return header, rows


def _label_value(text: str) -> float | None:
    """1.0 / 0.0 / -1.0 from a cell, nan for blank, None when it is not a label value."""
    text = text.strip()
    if not text:
        return math.nan
    try:
        v = float(text)
    except ValueError:
        return None
    return v if v in (1.0, 0.0, -1.0) else None


def _detect_label_columns(header: list[str], rows: list[dict[str, str]], exclude: set[str]) -> list[str]:
    """Columns that are not metadata and hold only 1 / 0 / -1 / blank, with at least one value."""
    found = []
    for col in header:
        if col in exclude or col.lower() in CHEXPERT_METADATA:
            continue
        values = [_label_value(r[col]) for r in rows]
        if all(v is not None for v in values) and any(not math.isnan(v) for v in values):
            found.append(col)
    return found


def _check_columns(path: Path, header: list[str], wanted: Iterable[str], what: str) -> None:
    absent = [c for c in wanted if c not in header]
    if absent:
        hint = "".join(did_you_mean(c, header) for c in absent[:3])
        raise DatasetError(f"{path} has no {what} column(s) {absent}; its columns are {header}.{hint}")


def _resolve(path_text: str, bases: Sequence[Path]) -> tuple[Path, bool]:
    """The file a CSV path names under the first base that holds it (else under the first base), and found."""
    rel = Path(path_text)
    for base in bases:
        candidate = base / rel
        if candidate.is_file():
            return candidate, True
    return bases[0] / rel, False


def load_label_csv(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    path_column: str = "Path",
    label_columns: Sequence[str] | None = None,
    uncertain: Uncertain = "positive",
    blank: float = 0.0,
    valid_csv: str | Path | None = None,
    split_column: str | None = None,
    group_column: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_missing: OnMissing = "error",
) -> Corpus:
    """A labelled corpus from a CheXpert-style CSV: a path column and label columns of 1 / 0 / -1 / blank.

    Args:
        csv_path: the train CSV (CheXpert's train.csv).
        image_root: folder the path column is relative to; None = the CSV's folder, then its parent (CheXpert
            paths start with "CheXpert-v1.0/", the folder the CSV is in).
        path_column: column holding the image paths.
        label_columns: label columns to use; None = every column that is not metadata (Path, Sex, Age,
            Frontal/Lateral, AP/PA, the split and group columns) and holds only 1, 0, -1 or blank.
        uncertain: what -1 (uncertain) becomes: "positive" (1, U-Ones: the seed paper's choice), "negative"
            (0) or "ignore" (NaN, masked out of the loss).
        blank: what a blank cell becomes (0 = not mentioned = negative; NaN = unknown).
        valid_csv: the official validation CSV (CheXpert's valid.csv); its rows are the val split.
        split_column: column holding train / val (valid, validation) / test per row; test rows are left out
            and listed in `skipped`. Not with valid_csv.
        group_column: column holding the group (patient id); None = "patientNNNNN" parsed from the path, else
            the file stem.
        val_fraction: without valid_csv and split_column, the share of train images carved (by group) for val.
        seed: seed of that carving.
        on_missing: "error" refuses rows naming missing files; "skip" leaves them out and lists them.

    Raises:
        DatasetError: an empty CSV, absent columns (the file's columns are listed), a cell that is not a label
            value, missing image files (count and the first 5), a label without a positive in train.
    """
    if uncertain not in ("positive", "negative", "ignore"):
        raise ConfigError(f"uncertain={uncertain!r} is unknown; use positive (U-Ones), negative or ignore")
    if on_missing not in ("error", "skip"):
        raise ConfigError(f"on_missing={on_missing!r} is unknown; use error or skip")
    if valid_csv is not None and split_column is not None:
        raise ConfigError("give valid_csv or split_column, not both: each fixes the val split")
    _check_val_fraction(val_fraction)
    csv_path = Path(csv_path)
    header, rows = _read_csv(csv_path)
    _check_columns(csv_path, header, [path_column], "path")
    special = [c for c in (split_column, group_column) if c is not None]
    _check_columns(csv_path, header, special, "split/group")
    if label_columns is None:
        names = _detect_label_columns(header, rows, {path_column, *special})
        if not names:
            raise DatasetError(
                f"{csv_path} has no label column (one holding only 1, 0, -1 or blank besides the metadata "
                f"columns); its columns are {header}. Name them with label_columns"
            )
    else:
        names = list(label_columns)
        if not names:
            raise ConfigError("label_columns is empty; give the label columns, or None to detect them")
        _check_columns(csv_path, header, names, "label")
    tables: list[tuple[Path, list[dict[str, str]], str | None]] = [(csv_path, rows, None)]
    if valid_csv is not None:
        valid_csv = Path(valid_csv)
        v_header, v_rows = _read_csv(valid_csv)
        _check_columns(valid_csv, v_header, [path_column, *special, *names], "path/label")
        tables.append((valid_csv, v_rows, "val"))

    u_value = {"positive": 1.0, "negative": 0.0, "ignore": math.nan}[uncertain]
    bases = [Path(image_root)] if image_root is not None else [csv_path.parent, csv_path.parent.parent]
    items: list[CorpusItem] = []
    splits: list[str | None] = []
    skipped: list[SkippedFile] = []
    missing: list[Path] = []
    for table, table_rows, fixed in tables:
        for r, row in enumerate(table_rows):
            line = r + 2
            text = row[path_column].strip()
            if not text:
                raise DatasetError(f"{table} line {line}: the {path_column} column is blank; every row "
                                   "needs an image path")
            split = fixed
            if split_column is not None:
                value = row[split_column].strip().lower()
                if value not in _SPLIT_NAMES:
                    raise DatasetError(f"{table} line {line}: {split_column}={row[split_column]!r} is not a "
                                       f"split; use one of {', '.join(_SPLIT_NAMES)}")
                split = _SPLIT_NAMES[value]
            path, found = _resolve(text, bases)
            if not found:
                missing.append(path)
                if on_missing == "skip":
                    skipped.append(SkippedFile(path, f"image file not found ({table.name} line {line})"))
                continue
            if split == "test":
                reason = f"test split ({table.name} line {line}): not for pre-training"
                skipped.append(SkippedFile(path, reason))
                continue
            labels = []
            for col in names:
                v = _label_value(row[col])
                if v is None:
                    raise DatasetError(f"{table} line {line}: {col}={row[col]!r} is not a label value; "
                                       "use 1, 0, -1 (uncertain) or blank")
                labels.append(blank if math.isnan(v) else u_value if v == -1.0 else v)
            if group_column is not None:
                group = row[group_column].strip()
            else:
                m = _PATIENT.search(text)
                group = m.group(1) if m else path.stem
            items.append(CorpusItem(path, tuple(labels), "train", group or path.stem))
            splits.append(split)
    if missing and on_missing == "error":
        first = ", ".join(str(p) for p in missing[:5])
        raise DatasetError(
            f"{len(missing)} image(s) listed in {csv_path.name}{' / ' + valid_csv.name if valid_csv else ''} "
            f"do not exist (looked under {', '.join(str(b) for b in bases)}), e.g. {first}; pass image_root= "
            "the folder the paths are relative to, or on_missing='skip' to leave them out and list them"
        )
    if not items:
        first = f"{skipped[0].path}: {skipped[0].reason}" if skipped else ""
        raise DatasetError(f"{csv_path}: no usable row is left ({len(skipped)} skipped, e.g. {first})")
    if all(s is None for s in splits):
        assigned = _split_by_group([it.group for it in items], val_fraction, seed)
    else:
        assigned = [s or "train" for s in splits]
    items = [CorpusItem(it.path, it.labels, s, it.group) for it, s in zip(items, assigned, strict=True)]
    corpus = Corpus(csv_path, items, tuple(names), "csv", skipped)
    if not corpus.part("train"):
        raise DatasetError(f"{csv_path}: no row is in the train split; check {split_column or 'the split'}")
    fix = ("leave them out with label_columns=[...]" +
           (", or use uncertain='positive'" if uncertain != "positive" else "") +
           (", or lower val_fraction" if valid_csv is None and split_column is None else ""))
    _check_positives(corpus, fix)
    return corpus


# --------------------------------------------------------------------------------------------------------
# Folders


def _image_suffixes() -> frozenset[str]:
    from flawscope.data.io import SUPPORTED_SUFFIXES

    return frozenset(s.lower() for s in SUPPORTED_SUFFIXES)


def _list_images_recursive(folder: Path) -> list[Path]:
    """Image files anywhere under a folder (supported suffixes, hidden files and folders left out), sorted."""
    suffixes = _image_suffixes()
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in suffixes and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_class_folders(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> Corpus:
    """A labelled corpus from class folders root/<class>/**/<image>: one-hot targets over the sorted classes.

    Split folders above the class folders (root/train/<class>/, root/val/<class>/, as the folders format
    allows) fix the split; test folders are left out and listed in `skipped`. Otherwise val is carved by
    group: the image's path under root without its suffix (stems like 001.png repeat across class folders
    without being the same image, as in the folders format). Folders without images are not classes.

    Raises:
        DatasetError: root is not a folder, fewer than two class folders hold images, a class has no train
            image.
    """
    from flawscope.data.sources.folders import SPLIT_FOLDERS

    _check_val_fraction(val_fraction)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; class folders need root/<class>/<images>")
    dirs = _subdirs(root)
    if dirs and all(d.name.lower() in SPLIT_FOLDERS for d in dirs):
        layout = [(d, SPLIT_FOLDERS[d.name.lower()]) for d in dirs]
    else:
        layout = [(root, None)]
    found: list[tuple[Path, str, str | None]] = []
    for base, split in layout:
        for class_dir in _subdirs(base):
            found += [(p, class_dir.name, split) for p in _list_images_recursive(class_dir)]
    classes = sorted({c for _, c, _ in found})
    if len(classes) < 2:
        raise DatasetError(
            f"{root} has {len(classes)} class folder(s) with images ({', '.join(classes) or 'none'}); "
            "class-folder pre-training needs root/<class>/ folders of at least two classes"
        )
    skipped = [SkippedFile(p, "test split folder: not for pre-training") for p, _, s in found if s == "test"]
    found = sorted((f for f in found if f[2] != "test"), key=lambda f: str(f[0]))
    groups = [p.relative_to(root).with_suffix("").as_posix() for p, _, _ in found]
    if any(s is not None for _, _, s in found):
        splits = [s or "train" for _, _, s in found]
    else:
        splits = _split_by_group(groups, val_fraction, seed)
    items = [
        CorpusItem(p, tuple(float(c == name) for name in classes), s, g)
        for (p, c, _), s, g in zip(found, splits, groups, strict=True)
    ]
    corpus = Corpus(root, items, tuple(classes), "folders", skipped)
    _check_positives(corpus, "add images of those classes, or lower val_fraction")
    return corpus


def _excluded(path: Path, root: Path, names: set[str], paths: list[Path]) -> str | None:
    """The exclude entry that leaves this file out, or None."""
    rel_parts = path.relative_to(root).parts
    for part in rel_parts:
        if part in names:
            return part
    resolved = path.resolve()
    for p in paths:
        if resolved == p or p in resolved.parents:
            return str(p)
    return None


def load_unlabelled(
    roots: str | Path | Sequence[str | Path],
    val_fraction: float = 0.1,
    seed: int = 0,
    exclude: Iterable[str | Path] = (),
) -> Corpus:
    """Every image under the given folders (recursively, sorted), unlabelled, for self-supervised learning.

    group = the first-level sub-folder under its root (a GDXray series such as C0003), or the file stem for
    images directly in a root. Val is carved by group when there are two groups or more, else by image.

    Args:
        roots: one folder or several; an image reached from two roots counts once.
        val_fraction: share of images for val.
        seed: seed of the carving.
        exclude: folder or file names (any level under a root, e.g. "C0001") or paths (files or folders) to
            leave out: the validation and test series of a downstream task must never be pre-trained on.
            An entry that matches nothing is warned about (it may be a typo).

    Raises:
        DatasetError: a root is not a folder, or fewer than two images are left (the count is given).
    """
    _check_val_fraction(val_fraction)
    roots = [roots] if isinstance(roots, str | Path) else list(roots)
    if not roots:
        raise ConfigError("roots is empty; give one folder of images or more")
    roots = [Path(r) for r in roots]
    for r in roots:
        if not r.is_dir():
            raise DatasetError(f"unlabelled root {r} is not a folder; give folders of images")
    entries = [str(e) for e in exclude]
    # An entry with a separator (or an absolute one) is a path; any other is a file or folder name.
    is_path = [Path(e).is_absolute() or "/" in e or "\\" in e for e in entries]
    paths = [Path(e).resolve() for e, flag in zip(entries, is_path, strict=True) if flag]
    names = {e for e, flag in zip(entries, is_path, strict=True) if not flag}
    used: set[str] = set()
    seen: set[Path] = set()
    items: list[CorpusItem] = []
    skipped: list[SkippedFile] = []
    for root in roots:
        for path in _list_images_recursive(root):
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            hit = _excluded(path, root, names, paths)
            if hit is not None:
                used.add(hit)
                continue
            rel = path.relative_to(root).parts
            items.append(CorpusItem(path, (), "train", rel[0] if len(rel) > 1 else path.stem))
    unused = [e for e, flag in zip(entries, is_path, strict=True)
              if (str(Path(e).resolve()) if flag else e) not in used]
    if unused:
        folders = sorted({d.name for r in roots for d in _subdirs(r)})
        hint = "".join(did_you_mean(e, folders) for e in unused[:3])
        warnings.warn(f"exclude entries {unused} match no image under {[str(r) for r in roots]}; check them "
                      f"(a typo would let held-out images into pre-training).{hint}", stacklevel=2)
    where = ", ".join(str(r) for r in roots)
    if len(items) < 2:
        raise DatasetError(
            f"unlabelled corpus under {where} has {len(items)} image(s)"
            + (f" after excluding {sorted(used)}" if used else "")
            + f"; pre-training needs at least 2 (supported suffixes: {', '.join(sorted(_image_suffixes()))})"
        )
    splits = _split_by_group([it.group for it in items], val_fraction, seed)
    items = [CorpusItem(it.path, (), s, it.group) for it, s in zip(items, splits, strict=True)]
    root = roots[0] if len(roots) == 1 else Path(_common_path(roots))
    return Corpus(root, items, (), "unlabelled", skipped)


def _common_path(roots: Sequence[Path]) -> str:
    import os

    try:
        return os.path.commonpath([str(r.resolve()) for r in roots])
    except ValueError:  # different drives
        return str(roots[0])


# --------------------------------------------------------------------------------------------------------
# Synthetic radiographs


def synthetic_corpus(
    out_dir: str | Path,
    n_images: int = 2000,
    size: int = 256,
    seed: int = 0,
    difficulty: float = 0.3,
    val_fraction: float = 0.1,
    progress: bool = False,
    n_parts: int | None = None,
    workers: int = 1,
) -> Corpus:
    """The project's synthetic radiographs as a labelled corpus: pore / crack / inclusion multi-hot targets.

    The images are generated once into `out_dir` (`flawscope.data.synth.generate_dataset`) and reused while
    its marker file (corpus_synth.json: the config and the generator's fingerprint) matches; with other
    settings they are regenerated. group = the synthetic part, so val parts are not train parts. A label
    without a train positive is not refused here (tiny corpora); `Corpus.positives()` tells.

    Args:
        out_dir: folder of the images; empty, absent, or one this function (or `flawscope synth`) wrote.
        n_images: number of radiographs (at least 2).
        size: height and width in pixels.
        seed: generator seed, also the seed of the val carving.
        difficulty: 0 (high-contrast flaws) .. 1 (faint flaws).
        val_fraction: share of images (whole parts) for val.
        progress: show a progress bar while generating.
        n_parts: distinct parts the views show; None = max(2, n_images // 10).
        workers: processes to render with (the images are the same for any count).
    """
    from flawscope.data.synth import (
        CONFIG_FILE,
        FLAW_TYPES,
        MANIFEST_FILE,
        SynthConfig,
        generate_dataset,
        generator_fingerprint,
    )

    _check_val_fraction(val_fraction)
    if n_images < 2:
        raise ConfigError(f"n_images={n_images} is too few for a corpus; use 2 or more")
    hi = min(14.0, size // 2)
    cfg = SynthConfig(
        n_images=n_images, size=(size, size), seed=seed, difficulty=difficulty, part="mixed",
        n_parts=n_parts if n_parts is not None else max(2, n_images // 10), flaw_size=(min(3.0, hi), hi),
    )
    out = Path(out_dir)
    marker = out / SYNTH_MARKER
    wanted = json.dumps({"config": cfg.to_dict(), "generator": generator_fingerprint()}, sort_keys=True)
    if not (marker.is_file() and marker.read_text() == wanted and (out / MANIFEST_FILE).is_file()):
        marker.unlink(missing_ok=True)  # stale: written again only once the new images are complete
        if out.is_dir() and any(out.iterdir()) and not (out / CONFIG_FILE).is_file():
            raise DatasetError(f"synthetic corpus folder {out} is not empty and holds no synthetic dataset; "
                               "choose an empty folder (or one synthetic_corpus wrote)")
        generate_dataset(out, cfg, progress=progress, overwrite=out.is_dir(), workers=workers)
        marker.write_text(wanted)
    with (out / MANIFEST_FILE).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != n_images:
        raise DatasetError(f"{out / MANIFEST_FILE} lists {len(rows)} images, expected {n_images}; delete "
                           f"{marker} to regenerate")
    groups = [r["group"] for r in rows]
    splits = _split_by_group(groups, val_fraction, seed)
    items = []
    for row, split, group in zip(rows, splits, groups, strict=True):
        types = set(filter(None, row["flaw_types"].split(";")))
        labels = tuple(float(t in types) for t in FLAW_TYPES)
        items.append(CorpusItem(out / row["path"], labels, split, group))
    return Corpus(out, items, tuple(FLAW_TYPES), "synthetic", [])


# --------------------------------------------------------------------------------------------------------
# Augmentation and datasets


@dataclass(frozen=True)
class CorpusAugment:
    """Radiograph augmentation for pre-training (no colour jitter: intensities carry the physics).

    Attributes:
        scale: (min, max) area of the crop region as a share of the input area (native resolution), or of
            the image area with resize=True; the region is resized to the input size (random resized crop).
        ratio: (min, max) aspect ratio of the region (drawn log-uniformly).
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rot90: rotate by a random multiple of 90° (only 0°/180° for a non-square input).
        gamma: (min, max) gamma of x ** gamma (drawn log-uniformly); p_gamma its probability.
        contrast: contrast factor drawn from [1 - contrast, 1 + contrast] around the image mean.
        brightness: offset drawn from [-brightness, brightness] (intensities in [0, 1]).
        p_intensity: probability of the contrast/brightness change.
        blur_sigma: (min, max) σ in pixels of a Gaussian blur; p_blur its probability.
        noise_std: maximum σ of additive Gaussian noise in [0, 1] intensity units; p_noise its probability.
    """

    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    vflip: float = 0.5
    rot90: bool = True
    gamma: tuple[float, float] = (0.7, 1.5)
    p_gamma: float = 0.5
    contrast: float = 0.2
    brightness: float = 0.1
    p_intensity: float = 0.8
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    p_blur: float = 0.2
    noise_std: float = 0.03
    p_noise: float = 0.5

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "p_gamma", "p_intensity", "p_blur", "p_noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment {name} is a probability in [0, 1], got {getattr(self, name)}")
        for name in ("scale", "ratio", "gamma", "blur_sigma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"augment {name} must be (min, max) with 0 < min <= max, got {(lo, hi)}")
        if self.scale[1] > 1:
            raise ConfigError(f"augment scale max must be <= 1 (a share of the area), got {self.scale}")
        for name in ("contrast", "brightness", "noise_std"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def none(cls) -> CorpusAugment:
        """Only the crop (full scale, square): for checks and ablations."""
        return cls(scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, vflip=0.0, rot90=False, p_gamma=0.0,
                   p_intensity=0.0, p_blur=0.0, p_noise=0.0)


def _crop_pad(image: np.ndarray, top: int, left: int, h: int, w: int) -> torch.Tensor:
    """A copy of image[:, top:top+h, left:left+w], zero-padded at the bottom/right where the image ends.

    Only the region is copied (the cached image is read-only and may be large).
    """
    part = image[:, top:top + h, left:left + w]
    region = np.zeros((image.shape[0], h, w), np.float32)
    region[:, :part.shape[1], :part.shape[2]] = part
    return torch.from_numpy(region)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return torch.nn.functional.interpolate(x[None], size=size, mode="bilinear", align_corners=False,
                                           antialias=True)[0]


def augment_view(
    image: np.ndarray | torch.Tensor,
    input_size: tuple[int, int],
    aug: CorpusAugment,
    rng: np.random.Generator,
    resize: bool = False,
) -> torch.Tensor:
    """One augmented view, float32 (C, h, w), intensities about [0, 1] (not normalised).

    Every random choice is drawn from `rng`, in a fixed order, so a view is a function of the rng's seed.

    Args:
        image: float (C, H, W) in [0, 1] at native resolution (not modified).
        input_size: (h, w) of the view.
        aug: the augmentation.
        rng: the view's generator (seed it from `sample_seed`).
        resize: False = the region is a share of the input area at native scale (zero-padded where the image
            ends); True = a share of the whole image, resized to the input size.
    """
    from torchvision.transforms.v2 import functional as TF

    image = np.asarray(image, dtype=np.float32)
    big_h, big_w = image.shape[-2:]
    h, w = input_size
    area = (big_h * big_w if resize else h * w) * rng.uniform(*aug.scale)
    ratio = math.exp(rng.uniform(math.log(aug.ratio[0]), math.log(aug.ratio[1])))
    rh, rw = max(1, round(math.sqrt(area / ratio))), max(1, round(math.sqrt(area * ratio)))
    if resize:
        rh, rw = min(rh, big_h), min(rw, big_w)
    top = int(rng.integers(0, max(big_h - rh, 0) + 1))
    left = int(rng.integers(0, max(big_w - rw, 0) + 1))
    x = _resize(_crop_pad(image, top, left, rh, rw), (h, w))
    flips = rng.random(2)
    if flips[0] < aug.hflip:
        x = x.flip(-1)
    if flips[1] < aug.vflip:
        x = x.flip(-2)
    # A quarter turn would swap h and w, so a non-square view turns by 0° or 180° only.
    k = (int(rng.integers(4)) if h == w else 2 * int(rng.integers(2))) if aug.rot90 else 0
    if k:
        x = torch.rot90(x, k, (-2, -1))
    if rng.random() < aug.p_gamma:
        gamma = math.exp(rng.uniform(math.log(aug.gamma[0]), math.log(aug.gamma[1])))
        x = x.clamp(0, 1) ** gamma
    if rng.random() < aug.p_intensity:
        c = rng.uniform(1 - aug.contrast, 1 + aug.contrast)
        b = rng.uniform(-aug.brightness, aug.brightness)
        mean = x.mean()
        x = ((x - mean) * c + mean + b).clamp(0, 1)
    if rng.random() < aug.p_blur:
        sigma = float(rng.uniform(*aug.blur_sigma))
        size = min(2 * math.ceil(3 * sigma) + 1, 2 * min(h, w) - 1)  # reflect padding needs pad < side
        x = TF.gaussian_blur(x, [size, size], [sigma, sigma])
    if rng.random() < aug.p_noise:
        sigma = rng.uniform(0, aug.noise_std)
        x = x + float(sigma) * torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32))
    return x.contiguous()


class _CorpusImages(Dataset):
    """What both corpus datasets share: decoding through the cache, normalisation and (index, epoch) items."""

    def __init__(
        self,
        items: Sequence[CorpusItem],
        input_size: int | tuple[int, int] = (224, 224),
        in_chans: int = 1,
        intensity: IntensityConfig = _DEFAULT_INTENSITY,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.25,),
        train: bool = True,
        cache: DecodeCache | None = None,
        seed: int = 0,
        resize: bool = False,
        augment: CorpusAugment | None = None,
    ) -> None:
        self.train = train
        self.items = list(items)  # may be empty (a corpus without val): the caller decides whether that is ok
        self.preprocess = PreprocessConfig(
            in_chans=in_chans, intensity=intensity, mean=tuple(mean), std=tuple(std),
            input_size=size_pair(input_size, "input_size"), resize=resize,
        )
        if min(self.preprocess.input_size) < 1:
            raise ConfigError(f"input_size must be positive, got {input_size}")
        self.input_size = self.preprocess.input_size
        self.cache = cache if cache is not None else DecodeCache()
        self.seed = int(seed)
        self.epoch = 0
        self.augment = augment if augment is not None else CorpusAugment()
        self._mean = torch.tensor(self.preprocess.mean, dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(self.preprocess.std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for items requested by position alone (`EpochSampler` hands (position, epoch))."""
        self.epoch = int(epoch)

    def _where(self, item: int | tuple[int, int]) -> tuple[int, int]:
        i, epoch = item if isinstance(item, tuple) else (item, self.epoch)
        return int(i), int(epoch)

    def _decode(self, i: int) -> np.ndarray:
        return self.cache.get_image(self.items[i].path, self.preprocess.intensity, self.preprocess.in_chans)

    def _view(self, full: np.ndarray, seed: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        x = augment_view(full, self.input_size, self.augment, rng, self.preprocess.resize)
        return (x - self._mean) / self._std


class CorpusDataset(_CorpusImages):
    """Supervised pre-training items: {"image": float32 (C, h, w) normalised, "labels": (K,), "index"}.

    Train items get a random (resized) crop at native resolution and the radiograph augmentation of
    `CorpusAugment`, seeded by (seed, epoch, index); val items (train=False) the deterministic centre crop
    (zero-padded when smaller) or resize of evaluation (`transforms.build_eval_transform`). Unknown labels
    stay NaN for the loss to mask.

    Args:
        items: the corpus items (one split); all with the same number of labels.
        input_size: (h, w) of the model input.
        in_chans: 1 (grayscale) or 3.
        intensity: raw value -> [0, 1] mapping.
        mean, std: normalisation, applied last.
        train: augment (True) or centre crop only (False).
        cache: decode cache (shared between datasets of one run); None = a new one.
        seed: base seed of the augmentation.
        resize: resize whole images instead of cropping at native resolution.
        augment: the augmentation; None = `CorpusAugment()`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        widths = Counter(len(it.labels) for it in self.items)
        if len(widths) > 1:
            raise DatasetError(f"corpus items carry different numbers of labels {sorted(widths)}; "
                               "use the items of one corpus")
        self.num_labels = next(iter(widths), 0)
        self._eval = None if self.train else build_eval_transform(self.preprocess)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        i, epoch = self._where(item)
        full = self._decode(i)
        if self._eval is not None:
            # A copy: the cached array is read-only.
            image = self._eval(torch.from_numpy(np.array(full)))["image"]
        else:
            image = self._view(full, sample_seed(self.seed, epoch, i))
        return {
            "image": image,
            "labels": torch.tensor(self.items[i].labels, dtype=torch.float32).reshape(self.num_labels),
            "index": torch.tensor(i, dtype=torch.int64),
        }


class TwoViewDataset(_CorpusImages):
    """Self-supervised items: {"view1", "view2": float32 (C, h, w) normalised, "index"}.

    Both views are independent draws of `CorpusAugment` from the same image, seeded by (seed, epoch, index)
    and the view number. With train=False (a val split) the epoch is ignored, so the val views, and a val
    loss on them, are the same every epoch.

    Args: as `CorpusDataset`; labels, if any, are not used.
    """

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        i, epoch = self._where(item)
        if not self.train:
            epoch = 0
        full = self._decode(i)
        return {
            "view1": self._view(full, sample_seed(self.seed, epoch, i, stream=1)),
            "view2": self._view(full, sample_seed(self.seed, epoch, i, stream=2)),
            "index": torch.tensor(i, dtype=torch.int64),
        }
