"""Train/val/test splits that never let a group (series, part, source radiograph) span two parts."""

from __future__ import annotations

import csv
import dataclasses
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flawscope.data.sample import DatasetIndex, Sample
from flawscope.errors import ConfigError, DatasetError

PARTS = ("train", "val", "test")


@dataclass
class Split:
    """Sample positions (into `DatasetIndex.samples`) of each part, and how they were chosen."""

    train: list[int]
    val: list[int]
    test: list[int]
    seed: int
    method: str

    def part(self, name: str) -> list[int]:
        """Positions of one part by name ("train", "val" or "test")."""
        if name not in PARTS:
            raise ConfigError(f"split part {name!r} is not one of {', '.join(PARTS)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        """Number of samples in each part."""
        return {p: len(self.part(p)) for p in PARTS}


def is_defective(sample: Sample, defective_classes: frozenset[str]) -> bool | None:
    """Whether a sample is defective: its own flag, else its label's class; None when unknown."""
    if sample.defective is not None:
        return sample.defective
    if sample.label:
        return sample.label in defective_classes
    return None


def _stratum(samples: list[Sample], index: DatasetIndex) -> str:
    """Stratification label of a group: any-defective for binary data, majority class otherwise."""
    if index.is_binary or not any(s.label for s in samples):
        flags = [is_defective(s, index.defective_classes) for s in samples]
        if any(flags):
            return "defect"
        return "ok" if any(f is False for f in flags) else ""
    counts = Counter(s.label for s in samples if s.label)
    best = max(counts.values())
    return min(label for label, n in counts.items() if n == best)  # ties broken by name: deterministic


def _groups(index: DatasetIndex, positions: list[int], by_group: bool) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i in positions:
        groups[index.samples[i].group if by_group else f"#{i}"].append(i)
    return groups


def _check_fractions(**fractions: float) -> None:
    for name, value in fractions.items():
        if not 0 <= value < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {value}")
    if sum(fractions.values()) >= 1:
        raise ConfigError(f"{' + '.join(fractions)} = {sum(fractions.values()):g} leaves nothing to train on")


def _assign(
    index: DatasetIndex,
    positions: list[int],
    fractions: dict[str, float],
    seed: int,
    by_group: bool,
    stratify: bool,
) -> dict[str, list[int]]:
    """Greedy, deterministic assignment of whole groups to parts so each stratum hits the target fractions.

    Within a stratum, groups are shuffled by the seed, then placed largest first where they bring the part
    closest to its targets of both samples and samples of the stratum's own class (a defective series also
    holds ok images): exact for one-sample groups, close for uneven ones.
    """
    rng = np.random.default_rng(seed)
    groups = _groups(index, positions, by_group)
    strata: dict[str, list[str]] = defaultdict(list)
    for name in sorted(groups):
        key = _stratum([index.samples[i] for i in groups[name]], index) if stratify else ""
        strata[key].append(name)
    out: dict[str, list[int]] = {p: [] for p in fractions}
    for key in sorted(strata):
        names = [strata[key][j] for j in rng.permutation(len(strata[key]))]
        names.sort(key=lambda n: -len(groups[n]))  # stable: equal sizes keep the seeded order
        sizes = {
            n: np.array([len(groups[n]), sum(_stratum([index.samples[i]], index) == key for i in groups[n])])
            for n in names
        }
        total = np.sum(list(sizes.values()), axis=0)
        scale = np.maximum(total, 1).astype(float)
        filled = {p: np.zeros(2) for p in fractions}
        for name in names:
            # Place the group where the squared relative miss of the targets grows least.
            growth = {}
            for p, f in fractions.items():
                miss = filled[p] - f * total
                growth[p] = float((((miss + sizes[name]) / scale) ** 2 - (miss / scale) ** 2).sum())
            part = min(growth, key=growth.__getitem__)
            filled[part] += sizes[name]
            out[part].extend(groups[name])
    return {p: sorted(v) for p, v in out.items()}


def make_split(
    index: DatasetIndex,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    by_group: bool = True,
    stratify: bool = True,
) -> Split:
    """Split a dataset into train/val/test, keeping every group within one part.

    When samples carry a fixed `Sample.split` (the dataset's own), it is honoured: samples without one join
    train, and a missing val (or test) part is carved from train by group with `val_fraction` (or
    `test_fraction`) of the dataset.

    Args:
        index: the dataset.
        val_fraction: share of samples for validation.
        test_fraction: share of samples for test.
        seed: same seed, same split.
        by_group: keep each `Sample.group` in one part (turn off only when samples are independent).
        stratify: balance defective/ok (binary) or majority class (multi-class) of groups across parts.
    """
    _check_fractions(val_fraction=val_fraction, test_fraction=test_fraction)
    if not index.samples:
        raise DatasetError(f"dataset {index.root} has no samples to split")
    if any(s.split for s in index.samples):
        fixed: dict[str, list[int]] = {p: [] for p in PARTS}
        for i, s in enumerate(index.samples):
            fixed[s.split or "train"].append(i)
        wanted = (("val", val_fraction), ("test", test_fraction))
        missing = {p: f for p, f in wanted if not fixed[p] and f > 0}
        if not missing:
            return Split(fixed["train"], fixed["val"], fixed["test"], seed, "fixed")
        n, n_train = len(index.samples), len(fixed["train"])
        # Fractions are of the whole dataset; rescale them to the train pool they are carved from.
        local = {p: f * n / n_train for p, f in missing.items()}
        if sum(local.values()) >= 1:
            raise ConfigError(
                f"the dataset's train part ({n_train} of {n} samples) is too small to carve "
                f"{', '.join(f'{p}={f:g}' for p, f in missing.items())} from; lower the fractions"
            )
        targets = {"train": 1 - sum(local.values()), **local}
        fixed.update(_assign(index, fixed["train"], targets, seed, by_group, stratify))
        return Split(fixed["train"], fixed["val"], fixed["test"], seed, f"fixed+carved-{'+'.join(missing)}")
    parts = _assign(
        index, list(range(len(index.samples))),
        {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction},
        seed, by_group, stratify,
    )
    method = ("group-" if by_group else "") + ("stratified" if stratify else "random")
    return Split(parts["train"], parts["val"], parts["test"], seed, method)


def kfold_splits(
    index: DatasetIndex,
    k: int = 5,
    seed: int = 0,
    by_group: bool = True,
    stratify: bool = True,
    val_fraction: float = 0.15,
) -> list[Split]:
    """K group-aware folds (sklearn): fold i is the test part of split i; val is carved from the other folds.

    Fixed `Sample.split` values are ignored: every sample is tested exactly once across the k splits.

    Args:
        index: the dataset.
        k: number of folds.
        seed: same seed, same folds.
        by_group: keep each group in one fold.
        stratify: balance classes across folds.
        val_fraction: share of the whole dataset carved (by group) from the training folds for validation.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got {k}")
    _check_fractions(val_fraction=val_fraction, test_fraction=1 / k)
    n = len(index.samples)
    groups = [s.group if by_group else str(i) for i, s in enumerate(index.samples)]
    if len(set(groups)) < k:
        raise DatasetError(
            f"{k}-fold split needs at least {k} {'groups' if by_group else 'samples'}, dataset {index.root} "
            f"has {len(set(groups))}; use a smaller k"
        )
    y = [_stratum([s], index) for s in index.samples]
    if stratify and by_group:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif by_group:
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif stratify:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    method = f"{k}fold-" + ("group-" if by_group else "") + ("stratified" if stratify else "random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only N members"
        folds = list(splitter.split(np.zeros(n), y, groups))
    out = []
    for fold, (rest, test) in enumerate(folds):
        local = val_fraction * n / len(rest)
        parts = _assign(index, [int(i) for i in rest], {"train": 1 - local, "val": local}, seed + fold,
                        by_group, stratify)
        test_part = sorted(int(i) for i in test)
        out.append(Split(parts["train"], parts["val"], test_part, seed, f"{method}:{fold}"))
    return out


def balance_indices(index: DatasetIndex, indices: list[int], seed: int = 0) -> list[int]:
    """Undersample every class to the size of the smallest one (the seed paper's 3,496 vs 3,496).

    Samples are grouped by label (by defective/ok when unlabelled); those with neither are dropped.

    Returns:
        The kept positions, in their original order.
    """
    by_class: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        s = index.samples[i]
        flag = is_defective(s, index.defective_classes)
        key = s.label or ("" if flag is None else ("defect" if flag else "ok"))
        if key:
            by_class[key].append(i)
    if len(by_class) < 2:
        raise DatasetError(
            f"cannot balance {len(indices)} samples of dataset {index.root}: they hold only "
            f"{sorted(by_class) or 'no labelled'} class(es); balancing needs at least two"
        )
    n_min = min(len(v) for v in by_class.values())
    rng = np.random.default_rng(seed)
    keep: set[int] = set()
    for key in sorted(by_class):
        members = by_class[key]
        keep.update(members[j] for j in rng.choice(len(members), size=n_min, replace=False))
    return [i for i in indices if i in keep]


def check_split(index: DatasetIndex, split: Split, by_group: bool = True) -> None:
    """Raise a DatasetError when a split cannot train or evaluate a detector.

    Checks: positions are valid and in one part only; train is not empty; no group spans two parts (unless
    the user chose a per-sample split, by_group=False); every
    non-empty part holds both defective and ok samples (binary) or at least two classes (multi-class).
    Multi-class parts missing some classes only warn.
    """
    n = len(index.samples)
    seen: dict[int, str] = {}
    for part in PARTS:
        for i in split.part(part):
            if not 0 <= i < n:
                raise DatasetError(f"split {part} holds position {i}; dataset {index.root} has {n} samples")
            if i in seen:
                raise DatasetError(f"sample {index.samples[i].image} is in both {seen[i]} and {part}")
            seen[i] = part
    if not split.train:
        raise DatasetError(f"split ({split.method}, seed {split.seed}) has an empty train part")
    group_parts: dict[str, set[str]] = defaultdict(set)
    for i, part in seen.items():
        group_parts[index.samples[i].group].add(part)
    leaks = {g: p for g, p in group_parts.items() if len(p) > 1}
    if leaks and by_group:
        g = sorted(leaks)[0]
        raise DatasetError(
            f"{len(leaks)} group(s) span several parts, e.g. group {g!r} is in "
            f"{', '.join(sorted(leaks[g]))}; "
            "this leaks between train and evaluation — split with by_group=True"
        )
    hint = "try another seed, larger val/test fractions, or balance the dataset"
    has_ok = any(c not in index.defective_classes for c in index.classes)
    for part in PARTS:
        positions = split.part(part)
        if not positions:
            continue
        samples = [index.samples[i] for i in positions]
        flags = [is_defective(s, index.defective_classes) for s in samples]
        n_def, n_ok = sum(f is True for f in flags), sum(f is False for f in flags)
        labels = Counter(s.label for s in samples if s.label)
        if index.is_binary or not labels:
            if n_def == 0 or n_ok == 0:
                raise DatasetError(
                    f"split {part} has {n_def} defective and {n_ok} ok samples (of {len(samples)}); "
                    f"it needs both — {hint} (seed {split.seed})"
                )
        elif len(labels) < 2:
            raise DatasetError(
                f"split {part} holds only class {next(iter(labels))!r} ({len(samples)} samples); {hint}"
            )
        elif part == "val" and has_ok and (n_def == 0 or n_ok == 0):
            # The decision threshold (defect vs ok) is chosen on val: it needs both sides there.
            missing_side = "ok" if n_ok == 0 else "defective"
            raise DatasetError(
                f"split val has no {missing_side} sample ({n_def} defective, {n_ok} ok of {len(samples)}), "
                f"so no decision threshold can be chosen on it; {hint} (seed {split.seed})"
            )
        elif missing := [c for c in index.classes if c not in labels]:
            warnings.warn(f"split {part} has no sample of class(es) {missing}", stacklevel=2)


def _path_key(index: DatasetIndex, path: Path) -> str:
    root = Path(index.root)
    base = root.parent if root.suffix else root  # a manifest file: paths relative to its folder
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _crop_key(crop: tuple[int, int, int, int] | None) -> str:
    return "" if crop is None else ":".join(str(v) for v in crop)


# The split file's train/val/test column; split files of older runs call it "part".
SPLIT_COLUMN = "split"
_OLD_SPLIT_COLUMN = "part"


def save_split(index: DatasetIndex, split: Split, path: str | Path) -> None:
    """Write a split as CSV (path, crop, label, group, split); paths relative to the dataset root.

    "split" holds train/val/test; "group" the unit kept in one split (e.g. the cast part).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        f.write(f"# flawscope split seed={split.seed} method={split.method}\n")
        writer = csv.writer(f)
        writer.writerow(["path", "crop", "label", "group", SPLIT_COLUMN])
        for part in PARTS:
            for i in split.part(part):
                s = index.samples[i]
                writer.writerow([_path_key(index, s.image), _crop_key(s.crop), s.label, s.group, part])


def read_split_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a split file (path, crop, label, group, split), "part" of older files read as "split"."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file {path} does not exist; pass a run's split.csv or a study's "
                           "folds/fold<k>/split.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for row in rows:
        if SPLIT_COLUMN not in row and _OLD_SPLIT_COLUMN in row:
            row[SPLIT_COLUMN] = row.pop(_OLD_SPLIT_COLUMN)
    return rows


def split_members(path: str | Path, dataset_root: str | Path, parts: Sequence[str] = ("train", "val")
                  ) -> set[tuple[Path, str]]:
    """(resolved image path, crop key) of the samples a split file puts in `parts` (see `sample_member`)."""
    root = Path(dataset_root)
    base = root.parent if root.suffix else root  # a manifest file: paths relative to its folder
    return {((base / r["path"]).resolve(), r.get("crop", "")) for r in read_split_rows(path)
            if r.get(SPLIT_COLUMN) in parts}


def split_groups(path: str | Path, parts: Sequence[str] = ("test",)) -> set[str]:
    """The groups (series, parts, source images) a split file puts in `parts`."""
    return {r["group"] for r in read_split_rows(path) if r.get(SPLIT_COLUMN) in parts and r.get("group")}


def sample_member(sample: Sample) -> tuple[Path, str]:
    """A sample as `split_members` names it: its resolved image path and crop key."""
    return Path(sample.image).resolve(), _crop_key(sample.crop)


def load_split(index: DatasetIndex, path: str | Path) -> Split:
    """Read a split written by `save_split`, matching rows to samples by (path, crop).

    Samples of the index that the file does not list stay out of every part. Files of older runs, whose
    train/val/test column is called "part", are read too.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file {path} does not exist; write one with save_split first")
    lookup = {(_path_key(index, s.image), _crop_key(s.crop)): i for i, s in enumerate(index.samples)}
    parts: dict[str, list[int]] = {p: [] for p in PARTS}
    seed, method, missing = -1, f"file:{path.name}", []
    with path.open(newline="") as f:
        first = f.readline()
        if first.startswith("#"):
            fields = dict(kv.split("=", 1) for kv in first[1:].split() if "=" in kv)
            seed, method = int(fields.get("seed", -1)), fields.get("method", method)
        else:
            f.seek(0)
        reader = csv.DictReader(f)
        names = set(reader.fieldnames or ())
        column = SPLIT_COLUMN if SPLIT_COLUMN in names else _OLD_SPLIT_COLUMN
        if not {"path", "crop", column} <= names:
            raise DatasetError(f"split file {path} needs columns path, crop, {SPLIT_COLUMN}; got "
                               f"{reader.fieldnames}; write it with save_split (or take a run's split.csv)")
        for line, row in enumerate(reader, start=2):
            part = row[column]
            if part not in PARTS:
                raise DatasetError(f"{path}:{line}: {SPLIT_COLUMN} {part!r} is not one of {', '.join(PARTS)}")
            key = (row["path"], row["crop"])
            if key in lookup:
                parts[part].append(lookup[key])
            else:
                missing.append(f"{row['path']}" + (f" crop {row['crop']}" if row["crop"] else ""))
    if missing:
        raise DatasetError(
            f"{len(missing)} row(s) of split file {path} match no sample of dataset {index.root}, e.g. "
            f"{', '.join(missing[:3])}; was the split made for another dataset or patch size?"
        )
    return Split(sorted(parts["train"]), sorted(parts["val"]), sorted(parts["test"]), seed, method)


def join_train_extra(index: DatasetIndex, extra: DatasetIndex) -> tuple[DatasetIndex, list[int]]:
    """`index` with the samples of `extra` it lacks appended (same path and crop = the same sample).

    Returns the joined index and the positions of the appended samples. Raises DatasetError when `extra`
    has labels that `index` does not (its classes decide the label indices).
    """
    unknown = sorted({s.label for s in extra.samples if s.label} - set(index.classes))
    if unknown:
        raise DatasetError(f"extra training data {extra.root} has labels {unknown} that dataset {index.root} "
                           f"does not (its classes: {index.classes}); give it the same class names")
    have = {sample_member(s) for s in index.samples}
    added = [s for s in extra.samples if sample_member(s) not in have]
    joined = dataclasses.replace(index, samples=[*index.samples, *added],
                                 skipped=[*index.skipped, *extra.skipped])
    return joined, list(range(len(index.samples), len(joined.samples)))


def extend_train(index: DatasetIndex, split: Split, positions: Sequence[int]) -> tuple[Split, int]:
    """The split with those positions that no part holds added to train when their group is a train group.

    Samples of val or test groups (or of groups in no part) are left out, so extra training data (hard
    negatives, simulated flaws) can never leak into validation or test. Returns (split, how many left out).
    """
    listed = set(split.train) | set(split.val) | set(split.test)
    train_groups = {index.samples[i].group for i in split.train}
    new = [i for i in positions if i not in listed]
    keep = [i for i in new if index.samples[i].group in train_groups]
    if not keep:
        return split, len(new)
    method = split.method if "+extra" in split.method else f"{split.method}+extra"
    extended = dataclasses.replace(split, train=sorted([*split.train, *keep]), method=method)
    return extended, len(new) - len(keep)
