"""Splits: deterministic, group-aware, stratified, fixed splits honoured, k-fold, balancing, CSV."""

from collections import Counter
from pathlib import Path

import pytest

from flawscope.data.sample import DatasetIndex, Sample
from flawscope.data.splits import (
    Split,
    balance_indices,
    check_split,
    kfold_splits,
    load_split,
    make_split,
    save_split,
)
from flawscope.errors import ConfigError, DatasetError

ROOT = Path("/data/castings")


def _index(n_groups: int = 40, defect_every: int = 3, split: dict[int, str] | None = None) -> DatasetIndex:
    """Groups of 1..4 images; every `defect_every`-th group holds a defective image."""
    samples = []
    for g in range(n_groups):
        for j in range(1 + g % 4):
            defect = g % defect_every == 0 and j == 0
            path = ROOT / f"S{g:03d}" / f"img{j}.png"
            label = "defect" if defect else "ok"
            samples.append(Sample(path, label, defect, group=f"S{g:03d}", split=(split or {}).get(g)))
    return DatasetIndex(ROOT, "test", samples, ["ok", "defect"], frozenset({"defect"}))


def _part_of(split: Split) -> dict[int, str]:
    return {i: p for p in ("train", "val", "test") for i in split.part(p)}


def test_same_seed_same_split_other_seed_other_split():
    index = _index()
    a, b, c = make_split(index, seed=3), make_split(index, seed=3), make_split(index, seed=4)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert (a.train, a.val, a.test) != (c.train, c.val, c.test)
    assert a.seed == 3 and a.method == "group-stratified"


@pytest.mark.parametrize("seed", range(12))
def test_no_group_leakage_and_every_sample_once(seed):
    index = _index()
    split = make_split(index, seed=seed)
    parts = _part_of(split)
    assert sorted(parts) == list(range(len(index)))
    assert len(split.train) + len(split.val) + len(split.test) == len(index)
    by_group: dict[str, set[str]] = {}
    for i, part in parts.items():
        by_group.setdefault(index.samples[i].group, set()).add(part)
    assert all(len(p) == 1 for p in by_group.values())
    check_split(index, split)


def test_fractions_and_stratification_with_independent_samples():
    samples = [Sample(ROOT / f"{i}.png", label="defect" if i < 60 else "ok") for i in range(200)]
    index = DatasetIndex(ROOT, "test", samples, ["ok", "defect"], frozenset({"defect"}))
    split = make_split(index, val_fraction=0.2, test_fraction=0.1, seed=1)
    assert (len(split.train), len(split.val), len(split.test)) == (140, 40, 20)
    defects = {p: sum(i < 60 for i in split.part(p)) for p in ("train", "val", "test")}
    assert defects == {"train": 42, "val": 12, "test": 6}  # exactly 30 % in every part


def test_stratified_groups_keep_defect_share_close():
    index = _index(n_groups=90)
    split = make_split(index, seed=0)
    n_defect_groups = {p: len({index.samples[i].group for i in split.part(p) if index.samples[i].defective})
                       for p in ("train", "val", "test")}
    # 30 defective groups: 70 / 15 / 15 % of them, within one group.
    assert abs(n_defect_groups["val"] - 4.5) <= 1 and abs(n_defect_groups["test"] - 4.5) <= 1
    # ... while the parts' sizes stay within one group (4 images) of 15 % of the 223 images.
    assert all(abs(len(split.part(p)) - 0.15 * len(index)) <= 4 for p in ("val", "test"))


def test_fixed_splits_are_honoured_and_val_is_carved_by_group():
    fixed = {g: ("test" if g >= 30 else "train") for g in range(40)}
    index = _index(split=fixed)
    split = make_split(index, seed=0)
    assert split.method == "fixed+carved-val"
    assert split.test == [i for i, s in enumerate(index.samples) if s.split == "test"]
    assert split.val and not set(split.val) & set(split.test)
    assert all(index.samples[i].split == "train" for i in split.val)
    check_split(index, split)
    fixed_val = {g: ("val" if g < 10 else "train") for g in range(40)}
    split = make_split(_index(split=fixed_val), seed=0)
    assert split.method == "fixed+carved-test" and split.test


def test_fixed_splits_with_all_parts_are_used_as_is():
    fixed = {g: ("train", "val", "test")[g % 3] for g in range(30)}
    index = _index(n_groups=30, split=fixed)
    split = make_split(index, seed=7)
    assert split.method == "fixed"
    assert all(index.samples[i].split == p for i, p in _part_of(split).items())


def test_bad_fractions_are_rejected():
    with pytest.raises(ConfigError, match="leaves nothing to train"):
        make_split(_index(), val_fraction=0.5, test_fraction=0.5)


def test_kfold_tests_every_sample_exactly_once_without_leaks():
    index = _index()
    folds = kfold_splits(index, k=4, seed=2)
    assert len(folds) == 4
    tested = Counter(i for f in folds for i in f.test)
    assert sorted(tested) == list(range(len(index))) and set(tested.values()) == {1}
    for fold in folds:
        check_split(index, fold)
        assert not set(fold.val) & set(fold.train)
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(index)
    assert [f.test for f in kfold_splits(index, k=4, seed=2)] == [f.test for f in folds]


def test_kfold_needs_enough_groups():
    with pytest.raises(DatasetError, match="at least 5 groups"):
        kfold_splits(_index(n_groups=3), k=5)


def test_balance_undersamples_the_majority():
    samples = [Sample(ROOT / f"{i}.png", label="defect" if i % 4 == 0 else "ok") for i in range(100)]
    index = DatasetIndex(ROOT, "test", samples, ["ok", "defect"], frozenset({"defect"}))
    kept = balance_indices(index, list(range(100)), seed=0)
    counts = Counter(index.samples[i].label for i in kept)
    assert counts == {"defect": 25, "ok": 25}
    assert kept == sorted(kept) and set(kept) <= set(range(100))
    assert kept == balance_indices(index, list(range(100)), seed=0)
    assert kept != balance_indices(index, list(range(100)), seed=1)


def test_check_split_names_part_and_counts_when_a_class_is_missing():
    index = _index()
    ok_only = [i for i, s in enumerate(index.samples) if not s.defective][:5]
    rest = [i for i in range(len(index)) if i not in ok_only]
    with pytest.raises(DatasetError, match=r"split val has 0 defective and 5 ok.*another seed"):
        check_split(index, Split(rest, ok_only, [], 0, "manual"))


def test_check_split_detects_group_leak():
    index = _index()
    first_group = [i for i, s in enumerate(index.samples) if s.group == "S001"]  # 2 samples
    train = [i for i in range(len(index)) if i != first_group[1]]
    with pytest.raises(DatasetError, match="group 'S001' is in test, train"):
        check_split(index, Split(train, [], [first_group[1]], 0, "manual"))


def test_save_and_load_round_trip_with_patches(tmp_path):
    samples = [Sample(ROOT / f"w{i}.png", label=lab, crop=(0, 16 * j, 16, 16), group=f"w{i}")
               for i in range(6) for j, lab in enumerate(["ok", "defect"])]
    index = DatasetIndex(ROOT, "patches", samples, ["ok", "defect"], frozenset({"defect"}))
    split = make_split(index, val_fraction=0.2, test_fraction=0.2, seed=5)
    path = tmp_path / "run" / "split.csv"
    save_split(index, split, path)
    header = path.read_text().splitlines()[1]
    assert header == "path,crop,label,group,split"  # "group" holds the cast part, "split" train/val/test
    assert "w0.png,0:16:16:16,defect,w0," in path.read_text()
    loaded = load_split(index, path)
    assert (loaded.train, loaded.val, loaded.test) == (split.train, split.val, split.test)
    assert (loaded.seed, loaded.method) == (5, split.method)
    # The same file against a dataset that lacks some rows names them.
    smaller = index.subset(list(range(10)))
    with pytest.raises(DatasetError, match=r"2 row\(s\).*w5.png crop 0:"):
        load_split(smaller, path)


def test_split_files_of_older_runs_with_a_part_column_still_load(tmp_path):
    samples = [Sample(ROOT / f"w{i}.png", label=["ok", "defect"][i % 2], group=f"w{i}") for i in range(6)]
    index = DatasetIndex(ROOT, "folders", samples, ["ok", "defect"], frozenset({"defect"}))
    split = make_split(index, val_fraction=0.2, test_fraction=0.2, seed=1)
    path = tmp_path / "split.csv"
    save_split(index, split, path)
    old = tmp_path / "old.csv"
    lines = path.read_text().splitlines()
    old.write_text("\n".join([lines[0], lines[1].replace(",split", ",part"), *lines[2:]]) + "\n")
    loaded = load_split(index, old)
    assert (loaded.train, loaded.val, loaded.test) == (split.train, split.val, split.test)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,crop,label,group\nw0.png,,ok,w0\n")
    with pytest.raises(DatasetError, match=r"needs columns path, crop, split.*got \['path', 'crop'"):
        load_split(index, bad)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("path,crop,label,group,split\nw0.png,,ok,w0,holdout\n")
    with pytest.raises(DatasetError, match=r"wrong.csv:2: split 'holdout' is not one of train, val, test"):
        load_split(index, wrong)
