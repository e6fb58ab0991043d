"""Pre-training corpora (data/corpus.py): CSV labels, class and unlabelled folders, synthetic, datasets."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flawscope.data.corpus import (
    Corpus,
    CorpusAugment,
    CorpusDataset,
    CorpusItem,
    TwoViewDataset,
    augment_view,
    carve_val,
    load_class_folders,
    load_label_csv,
    load_unlabelled,
    synthetic_corpus,
)
from flawscope.errors import ConfigError, DatasetError
from helpers.datasets import save
from helpers.images import random_radiograph, write_png16

LABELS = ["No Finding", "Cardiomegaly", "Edema", "Pleural Effusion"]
HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *LABELS]
# (patient, study, view, labels): -1 = uncertain, "" = not mentioned.
TRAIN_ROWS = [
    (1, 1, 1, ["1.0", "", "", ""]),
    (1, 1, 2, ["", "1.0", "-1.0", ""]),
    (2, 1, 1, ["", "-1.0", "1.0", "0.0"]),
    (3, 1, 1, ["", "0.0", "", "1.0"]),
    (4, 1, 1, ["1.0", "", "", ""]),
    (4, 2, 1, ["", "1.0", "0.0", "-1.0"]),
]
VALID_ROWS = [(64541, 1, 1, ["0.0", "1.0", "0.0", "1.0"]), (64542, 1, 1, ["1.0", "0.0", "0.0", "0.0"])]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _chexpert_rows(root: Path, part: str, rows: list, write: bool = True) -> list[list[str]]:
    """CheXpert rows whose paths start with "CheXpert-v1.0/" (relative to the CSV folder's parent)."""
    out = []
    for k, (patient, study, view, labels) in enumerate(rows):
        rel = f"CheXpert-v1.0/{part}/patient{patient:05d}/study{study}/view{view}_frontal.png"
        if write:
            save(root / rel, random_radiograph(16, 16, seed=patient * 10 + k, dtype=np.uint8))
        out.append([rel, "Female", str(40 + k), "Frontal", "AP", *labels])
    return out


@pytest.fixture
def chexpert(tmp_path: Path) -> Path:
    """root/CheXpert-v1.0/{train,valid}.csv with 16×16 PNGs; returns the CSV folder."""
    folder = tmp_path / "CheXpert-v1.0"
    _write_csv(folder / "train.csv", HEADER, _chexpert_rows(tmp_path, "train", TRAIN_ROWS))
    _write_csv(folder / "valid.csv", HEADER, _chexpert_rows(tmp_path, "valid", VALID_ROWS))
    return folder


# ---------------------------------------------------------------------------------------------- CSV


def test_chexpert_csv_labels_split_and_groups(chexpert: Path) -> None:
    corpus = load_label_csv(chexpert / "train.csv", valid_csv=chexpert / "valid.csv")
    assert corpus.source == "csv" and corpus.label_names == tuple(LABELS)  # Sex, Age, views left out
    train, val = corpus.part("train"), corpus.part("val")
    assert len(train) == 6 and len(val) == 2  # the official valid split, honoured
    assert all(it.path.is_file() for it in corpus.items)
    assert [it.group for it in train] == ["patient00001"] * 2 + ["patient00002", "patient00003"] + \
        ["patient00004"] * 2
    assert {it.group for it in val} == {"patient64541", "patient64542"}
    # U-Ones: uncertain -> 1; blank -> 0.
    assert train[1].labels == (0.0, 1.0, 1.0, 0.0)
    assert train[2].labels == (0.0, 1.0, 1.0, 0.0)
    assert train[5].labels == (0.0, 1.0, 0.0, 1.0)
    assert val[0].labels == (0.0, 1.0, 0.0, 1.0)
    assert corpus.positives() == {"No Finding": 2, "Cardiomegaly": 3, "Edema": 2, "Pleural Effusion": 2}


def test_uncertain_ignore_and_negative_and_blank(chexpert: Path) -> None:
    ignore = load_label_csv(chexpert / "train.csv", valid_csv=chexpert / "valid.csv", uncertain="ignore")
    labels = ignore.part("train")[1].labels
    assert labels[:2] == (0.0, 1.0) and math.isnan(labels[2]) and labels[3] == 0.0
    assert ignore.positives()["Cardiomegaly"] == 2  # the uncertain one is not counted
    negative = load_label_csv(chexpert / "train.csv", valid_csv=chexpert / "valid.csv", uncertain="negative")
    assert negative.part("train")[2].labels == (0.0, 0.0, 1.0, 0.0)
    blank_nan = load_label_csv(chexpert / "train.csv", valid_csv=chexpert / "valid.csv", blank=math.nan)
    assert math.isnan(blank_nan.part("train")[0].labels[1])
    with pytest.raises(ConfigError, match="uncertain"):
        load_label_csv(chexpert / "train.csv", uncertain="zeros")  # type: ignore[arg-type]


def test_csv_without_valid_carves_val_by_patient(chexpert: Path) -> None:
    a = load_label_csv(chexpert / "train.csv", val_fraction=0.3, seed=1)
    b = load_label_csv(chexpert / "train.csv", val_fraction=0.3, seed=1)
    assert [it.split for it in a.items] == [it.split for it in b.items]  # seeded
    assert a.part("val") and a.part("train")
    assert not a.groups("train") & a.groups("val")  # a patient never spans train and val


def test_csv_split_and_group_columns_and_explicit_root(tmp_path: Path) -> None:
    for i in range(4):
        save(tmp_path / "imgs" / f"im{i}.png", random_radiograph(16, 16, seed=i, dtype=np.uint8))
    rows = [[f"im{i}.png", s, g, y] for i, (s, g, y) in
            enumerate([("train", "a", "1"), ("train", "b", "0"), ("valid", "c", "1"), ("test", "d", "1")])]
    path = _write_csv(tmp_path / "labels" / "all.csv", ["file", "part", "pid", "crack"], rows)
    corpus = load_label_csv(path, image_root=tmp_path / "imgs", path_column="file", split_column="part",
                            group_column="pid")
    assert [(it.path.name, it.split, it.group) for it in corpus.items] == \
        [("im0.png", "train", "a"), ("im1.png", "train", "b"), ("im2.png", "val", "c")]
    assert [s.path.name for s in corpus.skipped] == ["im3.png"]  # the test row is left out, and listed
    assert corpus.label_names == ("crack",)


def test_csv_missing_columns_are_listed(chexpert: Path) -> None:
    with pytest.raises(DatasetError, match=r"no path column.*'Image'.*columns are \['Path', 'Sex'"):
        load_label_csv(chexpert / "train.csv", path_column="Image")
    with pytest.raises(DatasetError, match=r"no label column\(s\) \['Atelectasis'\].*'Cardiomegaly'"):
        load_label_csv(chexpert / "train.csv", label_columns=["Atelectasis", "Edema"])
    with pytest.raises(DatasetError, match=r"no split/group column\(s\) \['patient'\]"):
        load_label_csv(chexpert / "train.csv", group_column="patient")


def test_csv_missing_files_listed_or_skipped(chexpert: Path) -> None:
    gone = chexpert / "train" / "patient00002" / "study1" / "view1_frontal.png"
    gone.unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) listed in train.csv / valid.csv do not exist.*"
                                           r"patient00002.*on_missing='skip'"):
        load_label_csv(chexpert / "train.csv", valid_csv=chexpert / "valid.csv")
    corpus = load_label_csv(chexpert / "train.csv", valid_csv=chexpert / "valid.csv", on_missing="skip")
    assert len(corpus.part("train")) == 5
    assert [s.path.name for s in corpus.skipped] == ["view1_frontal.png"]
    assert "patient00002" in str(corpus.skipped[0].path) and "line 4" in corpus.skipped[0].reason


def test_csv_label_without_positive_is_listed(tmp_path: Path) -> None:
    rows = _chexpert_rows(tmp_path, "train", TRAIN_ROWS)
    header = [*HEADER, "Fracture", "Lung Lesion"]
    rows = [[*r, "0.0", "-1.0" if k == 0 else ""] for k, r in enumerate(rows)]
    path = _write_csv(tmp_path / "CheXpert-v1.0" / "train.csv", header, rows)
    with pytest.raises(DatasetError, match=r"label\(s\) \['Fracture'\] have no positive.*label_columns"):
        load_label_csv(path, val_fraction=0)
    with pytest.raises(DatasetError, match=r"\['Fracture', 'Lung Lesion'\] have no positive"):
        load_label_csv(path, val_fraction=0, uncertain="ignore")
    corpus = load_label_csv(path, val_fraction=0, label_columns=LABELS)
    assert corpus.label_names == tuple(LABELS)


def test_csv_empty_and_bad_values(tmp_path: Path) -> None:
    header_only = _write_csv(tmp_path / "header.csv", HEADER, [])
    with pytest.raises(DatasetError, match="is empty .a header but no rows"):
        load_label_csv(header_only)
    (tmp_path / "zero.csv").write_text("")
    with pytest.raises(DatasetError, match="is empty .no header"):
        load_label_csv(tmp_path / "zero.csv")
    save(tmp_path / "a.png", random_radiograph(16, 16, dtype=np.uint8))
    bad = _write_csv(tmp_path / "bad.csv", ["Path", "crack"], [["a.png", "1"], ["a.png", "2"]])
    with pytest.raises(DatasetError, match=r"line 3: crack='2' is not a label value"):
        load_label_csv(bad, label_columns=["crack"])
    with pytest.raises(DatasetError, match="no label column"):
        load_label_csv(bad)  # "2" makes the column not a label column


# ---------------------------------------------------------------------------------------------- folders


def test_class_folders_one_hot_recursive_and_grouped(tmp_path: Path) -> None:
    for k, (cls, names) in enumerate({"pore": ["001", "002", "003"], "crack": ["001", "004", "005"],
                                      "ok": ["sub/001", "sub/006", "007"]}.items()):
        for j, name in enumerate(names):
            save(tmp_path / cls / f"{name}.png", random_radiograph(16, 16, seed=10 * k + j, dtype=np.uint8))
    (tmp_path / "empty").mkdir()
    corpus = load_class_folders(tmp_path, val_fraction=0.25, seed=0)
    assert corpus.source == "folders" and corpus.label_names == ("crack", "ok", "pore")
    assert len(corpus) == 9
    by_name = {it.path.relative_to(tmp_path).as_posix(): it for it in corpus.items}
    assert by_name["ok/sub/006.png"].labels == (0.0, 1.0, 0.0)
    assert by_name["crack/001.png"].labels == (1.0, 0.0, 0.0)
    assert by_name["crack/001.png"].group == "crack/001"  # 001 of crack is not 001 of pore
    assert 1 <= len(corpus.part("val")) <= 3
    assert all(n > 0 for n in corpus.positives().values())
    with pytest.raises(DatasetError, match=r"1 class folder\(s\) with images \(crack\)"):
        load_class_folders(_one_class(tmp_path / "one"))


def _one_class(root: Path) -> Path:
    save(root / "crack" / "a.png", random_radiograph(16, 16, dtype=np.uint8))
    save(root / "crack" / "b.png", random_radiograph(16, 16, seed=1, dtype=np.uint8))
    return root


def test_class_folders_split_folders(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        for cls in ("crack", "ok"):
            save(tmp_path / split / cls / "a.png", random_radiograph(16, 16, dtype=np.uint8))
    corpus = load_class_folders(tmp_path)
    assert [(it.path.parent.parent.name, it.split) for it in corpus.items] == \
        [("train", "train"), ("train", "train"), ("val", "val"), ("val", "val")]
    assert len(corpus.skipped) == 2 and "test split" in corpus.skipped[0].reason


# ---------------------------------------------------------------------------------------------- unlabelled


def _series(root: Path, counts: dict[str, int]) -> Path:
    for s, (name, n) in enumerate(counts.items()):
        for i in range(n):
            save(root / name / f"{name}_{i + 1:04d}.png", random_radiograph(16, 16, seed=s * 10 + i,
                                                                              dtype=np.uint8))
    return root


def test_unlabelled_groups_exclude_and_split(tmp_path: Path) -> None:
    root = _series(tmp_path / "castings", {"C0001": 3, "C0002": 3, "C0003": 2, "C0004": 2})
    save(root / "loose.png", random_radiograph(16, 16, dtype=np.uint8))
    (root / "C0001" / "notes.txt").write_text("not an image")
    corpus = load_unlabelled([root], val_fraction=0.2, seed=0, exclude=["C0002"])
    assert corpus.source == "unlabelled" and corpus.label_names == ()
    assert len(corpus) == 8 and all(it.labels == () for it in corpus.items)
    assert {it.group for it in corpus.items} == {"C0001", "C0003", "C0004", "loose"}
    assert not any("C0002" in str(it.path) for it in corpus.items)  # a downstream val series stays out
    assert corpus.part("val") and not corpus.groups("train") & corpus.groups("val")
    by_path = load_unlabelled(str(root), exclude=[root / "C0003"])  # a path; one root given as a str
    assert {it.group for it in by_path.items} == {"C0001", "C0002", "C0004", "loose"}
    assert [it.path for it in by_path.items] == sorted(it.path for it in by_path.items)
    assert len(load_unlabelled([root, root / "C0001"])) == 11  # an image reached twice counts once
    with pytest.warns(UserWarning, match=r"\['C0O02'\] match no image.*'C0002'"):
        load_unlabelled(root, exclude=["C0O02"])


def test_unlabelled_refuses_empty_and_one_image(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"has 0 image\(s\)"):
        load_unlabelled([tmp_path / "empty"])
    root = _series(tmp_path / "one", {"C0001": 1, "C0002": 1})
    with pytest.raises(DatasetError, match=r"has 1 image\(s\) after excluding \['C0002'\]"):
        load_unlabelled([root], exclude=["C0002"])
    with pytest.raises(DatasetError, match="is not a folder"):
        load_unlabelled([tmp_path / "nowhere"])


def test_unlabelled_one_group_splits_by_image(tmp_path: Path) -> None:
    root = _series(tmp_path / "r", {"C0001": 5})
    corpus = load_unlabelled([root], val_fraction=0.2)
    assert len(corpus.part("val")) == 1 and len(corpus.part("train")) == 4


def test_carve_val_keeps_groups_whole_and_both_sides() -> None:
    groups = [f"g{i // 3}" for i in range(30)]
    flags = carve_val(groups, 0.2, seed=3)
    assert sum(flags) == 6 and flags == carve_val(groups, 0.2, seed=3)
    assert all(len({f for g, f in zip(groups, flags, strict=True) if g == name}) == 1 for name in set(groups))
    assert sum(carve_val(["a", "b"], 0.9)) == 1  # train always keeps a group
    assert not any(carve_val(groups, 0.0))
    with pytest.raises(ConfigError, match="val_fraction"):
        carve_val(groups, 1.0)


# ---------------------------------------------------------------------------------------------- synthetic


def test_synthetic_corpus_labels_match_manifest_and_is_reused(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    corpus = synthetic_corpus(out, n_images=8, size=64, seed=0, val_fraction=0.25)
    assert corpus.source == "synthetic" and corpus.label_names == ("pore", "crack", "inclusion")
    with (out / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [it.path for it in corpus.items] == [out / r["path"] for r in rows]
    for it, row in zip(corpus.items, rows, strict=True):
        types = set(filter(None, row["flaw_types"].split(";")))
        assert it.labels == tuple(float(t in types) for t in corpus.label_names)
        assert it.group == row["group"]
    assert any(any(it.labels) for it in corpus.items) and any(not any(it.labels) for it in corpus.items)
    assert corpus.part("val") and not corpus.groups("train") & corpus.groups("val")
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    again = synthetic_corpus(out, n_images=8, size=64, seed=0, val_fraction=0.25)
    assert {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == mtimes  # not regenerated
    assert [(it.path, it.labels, it.split) for it in again.items] == \
        [(it.path, it.labels, it.split) for it in corpus.items]
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("somebody's file")
    with pytest.raises(DatasetError, match="not empty and holds no synthetic dataset"):
        synthetic_corpus(other, n_images=8, size=64)


def test_synthetic_corpus_regenerates_on_new_settings(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    synthetic_corpus(out, n_images=4, size=32, seed=0)
    first = (out / "images" / "synth_00000.png").read_bytes()
    corpus = synthetic_corpus(out, n_images=3, size=32, seed=5)
    assert len(corpus) == 3 and len(list((out / "images").iterdir())) == 3
    assert (out / "images" / "synth_00000.png").read_bytes() != first


# ---------------------------------------------------------------------------------------------- datasets


@pytest.fixture
def items(tmp_path: Path) -> list[CorpusItem]:
    """Three 16-bit images (40×48, 48×40 and a 16×16 smaller than the input) with two labels."""
    out = []
    for i, (h, w) in enumerate([(40, 48), (48, 40), (16, 16)]):
        path = write_png16(tmp_path / f"im{i}.png", random_radiograph(h, w, seed=i))
        out.append(CorpusItem(path, (1.0, math.nan) if i == 0 else (0.0, 1.0), "train", f"g{i}"))
    return out


def test_corpus_dataset_shapes_labels_and_determinism(items: list[CorpusItem]) -> None:
    ds = CorpusDataset(items, input_size=(32, 32), seed=7)
    out = ds[0]
    assert out["image"].shape == (1, 32, 32) and out["image"].dtype == torch.float32
    assert out["labels"].dtype == torch.float32 and out["labels"][0] == 1 and torch.isnan(out["labels"][1])
    assert int(out["index"]) == 0
    again = CorpusDataset(items, input_size=(32, 32), seed=7)
    for i in range(3):
        assert torch.equal(ds[(i, 2)]["image"], again[(i, 2)]["image"])  # same seed, epoch, index
    assert not torch.equal(ds[(0, 1)]["image"], ds[(0, 2)]["image"])  # a new epoch, a new draw
    assert not torch.equal(ds[(0, 1)]["image"], CorpusDataset(items, (32, 32), seed=8)[(0, 1)]["image"])
    assert ds[2]["image"].shape == (1, 32, 32)  # a smaller image is padded
    rgb = CorpusDataset(items, input_size=24, in_chans=3, resize=True)
    assert rgb[1]["image"].shape == (3, 24, 24)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 1, 32, 32) and batch["labels"].shape == (3, 2)


def test_corpus_dataset_val_is_a_deterministic_centre_crop(items: list[CorpusItem]) -> None:
    from flawscope.data.io import load_image

    ds = CorpusDataset(items, input_size=(32, 32), train=False, mean=(0.5,), std=(0.25,))
    a, b = ds[(0, 0)]["image"], ds[(0, 5)]["image"]
    assert torch.equal(a, b)
    full = torch.from_numpy(load_image(items[0].path))
    assert torch.allclose(a, (full[:, 4:36, 8:40] - 0.5) / 0.25)
    small = ds[2]["image"]
    assert small.shape == (1, 32, 32)
    assert torch.all(small[:, :8] == -2.0) and torch.all(small[:, :, -8:] == -2.0)  # zero padding, normalised
    resized = CorpusDataset(items, input_size=(20, 24), train=False, resize=True)
    assert resized[0]["image"].shape == (1, 20, 24)


def test_augment_none_is_a_plain_crop_and_augment_changes_it(items: list[CorpusItem]) -> None:
    from flawscope.data.io import load_image

    full = load_image(items[0].path)
    rng = np.random.default_rng(0)
    view = augment_view(full, (24, 24), CorpusAugment.none(), rng).numpy()
    windows = [(t, left) for t in range(40 - 23) for left in range(48 - 23)
               if np.array_equal(view, full[:, t:t + 24, left:left + 24])]
    assert len(windows) == 1
    strong = augment_view(full, (24, 24), CorpusAugment(p_noise=1.0, p_gamma=1.0), np.random.default_rng(0))
    assert strong.shape == (1, 24, 24) and not np.array_equal(strong.numpy(), view)
    assert torch.equal(strong, augment_view(full, (24, 24), CorpusAugment(p_noise=1.0, p_gamma=1.0),
                                            np.random.default_rng(0)))
    non_square = augment_view(full, (16, 24), CorpusAugment(), np.random.default_rng(3))
    assert non_square.shape == (1, 16, 24)
    with pytest.raises(ConfigError, match="hflip"):
        CorpusAugment(hflip=2.0)


def test_two_view_dataset(items: list[CorpusItem]) -> None:
    ds = TwoViewDataset(items, input_size=(32, 32), seed=1)
    out = ds[(1, 3)]
    assert out["view1"].shape == out["view2"].shape == (1, 32, 32) and int(out["index"]) == 1
    assert not torch.equal(out["view1"], out["view2"])
    assert torch.equal(out["view1"], TwoViewDataset(items, (32, 32), seed=1)[(1, 3)]["view1"])
    assert not torch.equal(out["view1"], ds[(1, 4)]["view1"])
    val = TwoViewDataset(items, (32, 32), seed=1, train=False)
    assert torch.equal(val[(1, 3)]["view1"], val[(1, 9)]["view1"])  # val views do not change by epoch
    ds.set_epoch(3)
    assert torch.equal(ds[1]["view2"], out["view2"])


def test_dataset_label_widths_and_empty(items: list[CorpusItem]) -> None:
    with pytest.raises(DatasetError, match="different numbers of labels"):
        CorpusDataset([*items, CorpusItem(items[0].path, (1.0,), "train")])
    assert len(TwoViewDataset([])) == 0 and len(CorpusDataset([])) == 0  # an empty val: the caller decides


def test_corpus_part_and_write_split(tmp_path: Path, items: list[CorpusItem]) -> None:
    corpus = Corpus(tmp_path, items, ("a", "b"), "csv", [])
    with pytest.raises(ConfigError, match="not one of train, val"):
        corpus.part("test")
    assert corpus.positives() == {"a": 1, "b": 2}
    with corpus.write_split(tmp_path / "split.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "split", "group", "a", "b"] and rows[1][3:] == ["1", ""]
    assert "3 train / 0 val" in corpus.summary()
