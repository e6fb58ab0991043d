"""Dataset formats: detection, indexing of every format on tiny data, bad files, and the real datasets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from flawscope.data.sample import Box, RleMask
from flawscope.data.sources import detect_format, list_formats, load_dataset, register_source
from flawscope.data.sources._common import is_ok_name
from flawscope.errors import ConfigError, DatasetError, FlawscopeError, ImageReadError
from helpers.datasets import (
    DEFECT_BOX,
    EXPECTED,
    FORMAT_MAKERS,
    make_dagm_dataset,
    make_folders_dataset,
    make_gdxray_dataset,
    make_image_mask_dataset,
    make_magnetic_tile_dataset,
    make_manifest_dataset,
    make_mvtec_dataset,
    make_neu_dataset,
    make_severstal_dataset,
    save,
    tiny_image,
)

ALL_FORMATS = sorted(FORMAT_MAKERS)


def test_every_format_is_registered_and_has_a_maker():
    assert list_formats() == ALL_FORMATS


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_format_detected_and_indexed(tmp_path: Path, fmt: str):
    root = FORMAT_MAKERS[fmt](tmp_path / fmt)
    assert detect_format(root) == fmt
    index = load_dataset(root)
    want = EXPECTED[fmt]
    assert index.format == fmt
    assert len(index) == want["samples"]
    assert sum(s.has_mask for s in index.samples) == want["masks"]
    assert sum(len(s.boxes) for s in index.samples) == want["boxes"]
    if want["defective"] is None:
        assert all(s.defective is None for s in index.samples)
    else:
        assert sum(s.defective is True for s in index.samples) == want["defective"]
    # Deterministic, sorted order; every file exists; labels are classes.
    assert [s.image for s in index.samples] == sorted(s.image for s in index.samples)
    assert all(s.image.is_file() for s in index.samples)
    assert all(s.mask.is_file() for s in index.samples if isinstance(s.mask, Path))
    assert {s.label for s in index.samples if s.label} <= set(index.classes)
    assert index.defective_classes <= set(index.classes)
    assert index.skipped == []
    again = load_dataset(root, format=fmt, check="none")
    assert again.samples == index.samples


# ---------------------------------------------------------------------------------------------- folders


def test_folders_keep_user_class_names_ok_first(tmp_path: Path):
    root = make_folders_dataset(tmp_path, {"good": 2, "crack": 1, "pore": 2})
    index = load_dataset(root)
    assert index.classes == ["good", "crack", "pore"]  # ok-like first, then defective, each sorted
    assert index.defective_classes == {"crack", "pore"}
    assert Counter(s.label for s in index.samples) == {"good": 2, "crack": 1, "pore": 2}
    assert all(s.defective == (s.label != "good") for s in index.samples)
    assert len({s.group for s in index.samples}) == 5


def test_folders_binary_index_one_is_defective(tmp_path: Path):
    index = load_dataset(make_folders_dataset(tmp_path))
    assert index.classes == ["ok", "defect"] and index.defective_classes == {"defect"}


def test_folders_defective_classes_argument(tmp_path: Path):
    root = make_folders_dataset(tmp_path, {"a": 1, "b": 2})
    assert load_dataset(root).defective_classes == {"a", "b"}  # no ok-like name: all defective
    index = load_dataset(root, defective_classes=["b"])
    assert index.classes == ["a", "b"] and index.defective_classes == {"b"}
    assert [s.defective for s in index.samples] == [False, True, True]
    assert load_dataset(root, defective_classes="b").defective_classes == {"b"}  # a str is one name
    with pytest.raises(DatasetError, match=r"\['c'\].*classes are \['a', 'b'\]"):
        load_dataset(root, defective_classes=["c"])


def test_folders_empty_class_folder_is_listed(tmp_path: Path):
    root = make_folders_dataset(tmp_path, {"ok": 2, "defect": 1}, empty=["review"])
    index = load_dataset(root)
    assert index.classes == ["ok", "defect"]
    assert [s.path.name for s in index.skipped] == ["review"]
    assert index.skipped[0].reason.startswith("empty class folder")


def test_folders_under_split_folders(tmp_path: Path):
    make_folders_dataset(tmp_path / "train", {"ok": 2, "defect": 1})
    make_folders_dataset(tmp_path / "val", {"ok": 1, "defect": 1})
    (tmp_path / "test" / "defect").mkdir(parents=True)  # empty here, filled in train: not an empty class
    assert detect_format(tmp_path) == "folders"
    index = load_dataset(tmp_path)
    assert index.classes == ["ok", "defect"] and index.skipped == []
    assert Counter((s.split, s.label) for s in index.samples) == {
        ("train", "ok"): 2, ("train", "defect"): 1, ("val", "ok"): 1, ("val", "defect"): 1}
    assert len({s.group for s in index.samples}) == 5  # train/ok/ok_000 and val/ok/ok_000 differ


def test_folders_all_empty_is_an_error(tmp_path: Path):
    (tmp_path / "ok").mkdir()
    (tmp_path / "defect").mkdir()
    with pytest.raises(DatasetError, match="no class folder .* holds images"):
        load_dataset(tmp_path, format="folders")


def test_folders_single_class_loads(tmp_path: Path):
    index = load_dataset(make_folders_dataset(tmp_path, {"defect": 3}))
    assert index.classes == ["defect"] and len(index) == 3


@pytest.mark.parametrize(
    ("name", "ok"),
    [("ok", True), ("OK", True), ("good", True), ("MT_Free", True), ("no_defect", True),
     ("non-defective", True), ("defect_free", True), ("Normal", True), ("defect", False), ("crack", False),
     ("not_ok", False), ("no_good", False), ("freeze", False)],
)
def test_ok_name_rule(name: str, ok: bool):
    assert is_ok_name(name) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [("ok_front", True), ("OK-Front", True), ("good_parts", True), ("normal-1", True), ("front_ok", True),
     ("good parts", True), ("normal_weld", True), ("def_front", False), ("broken", False), ("okay", False),
     ("okra", False), ("goodness", False), ("ok_defect", False), ("good_but_bad", False),
     ("normal_not", False), ("class_0", False), ("free_edge", False)],
)
def test_ok_name_rule_takes_ok_words_as_prefix_too(name: str, ok: bool):
    # Kaggle "casting product" folders: ok_front/ and def_front/.
    assert is_ok_name(name) is ok


def test_folders_casting_product_layout(tmp_path: Path):
    root = make_folders_dataset(tmp_path, {"ok_front": 2, "def_front": 2})
    index = load_dataset(root)
    assert index.classes == ["ok_front", "def_front"] and index.defective_classes == {"def_front"}


def test_ok_classes_argument(tmp_path: Path):
    root = make_folders_dataset(tmp_path, {"class_0": 2, "class_1": 1})
    assert load_dataset(root).defective_classes == {"class_0", "class_1"}  # no ok-like name
    index = load_dataset(root, ok_classes=["class_0"])
    assert index.classes == ["class_0", "class_1"] and index.defective_classes == {"class_1"}
    assert [s.defective for s in index.samples] == [False, False, True]
    assert load_dataset(root, ok_classes="class_0").defective_classes == {"class_1"}  # a str is one name
    # Naming every class ok is allowed here (check_dataset refuses it before training).
    assert load_dataset(root, ok_classes=["class_0", "class_1"]).defective_classes == frozenset()
    with pytest.raises(DatasetError, match=r"ok classes \['c'\].*classes are \['class_0', 'class_1'\]"):
        load_dataset(root, ok_classes=["c"])
    with pytest.raises(ConfigError, match="defective_classes or ok_classes"):
        load_dataset(root, ok_classes=["class_0"], defective_classes=["class_1"])


def test_ok_classes_in_manifest_and_magnetic_tile(tmp_path: Path):
    tiles = make_magnetic_tile_dataset(tmp_path / "mt")
    classes = load_dataset(tiles).classes
    index = load_dataset(tiles, ok_classes=[classes[-1]])
    assert index.defective_classes == set(classes[:-1])
    with pytest.raises(DatasetError, match="ok classes"):
        load_dataset(tiles, ok_classes=["nope"])
    manifest = make_manifest_dataset(tmp_path / "man") / "manifest.csv"
    assert load_dataset(manifest, ok_classes=["ok"]).defective_classes == {"defect"}
    # Formats whose annotations decide defect status: their ok class is accepted, others are refused.
    mvtec = make_mvtec_dataset(tmp_path / "mvtec")
    assert load_dataset(mvtec, ok_classes=["ok"]).defective_classes == {"defect"}
    with pytest.raises(DatasetError, match=r"ok classes \['defect'\].*mvtec annotations"):
        load_dataset(mvtec, ok_classes=["defect"])
    with pytest.raises(DatasetError, match=r"ok classes \['good'\].*its classes are \['ok', 'defect'\]"):
        load_dataset(mvtec, ok_classes=["good"])


# ------------------------------------------------------------------------------------------- image_mask


@pytest.mark.parametrize("suffix", ["", "_mask", "_label"])
def test_image_mask_matches_stems(tmp_path: Path, suffix: str):
    root = make_image_mask_dataset(tmp_path, n=3, mask_suffix=suffix, unmasked=1)
    index = load_dataset(root)
    assert [s.mask.name if s.mask else None for s in index.samples] == [
        f"img_000{suffix}.png", f"img_001{suffix}.png", None]
    assert all(s.defective is None and s.label == "" for s in index.samples)


def test_image_mask_orphan_mask_is_listed(tmp_path: Path):
    root = make_image_mask_dataset(tmp_path, n=2)
    save(root / "masks" / "gone_mask.png", np.zeros((32, 32), bool))
    index = load_dataset(root)
    assert len(index) == 2
    assert [s.path.name for s in index.skipped] == ["gone_mask.png"]


# -------------------------------------------------------------------------------------------- gdxray


def test_gdxray_boxes_column_order_and_groups(tmp_path: Path):
    index = load_dataset(make_gdxray_dataset(tmp_path))
    first = index.samples[0]
    assert first.image.name == "C0001_0001.png"
    x1, y1, x2, y2 = DEFECT_BOX
    # ground_truth rows are "index x1 x2 y1 y2"; Box is (x1, y1, x2, y2)
    assert first.boxes == (Box(x1, y1, x2, y2), Box(20.5, 2.0, 28.5, 6.0))
    assert [len(s.boxes) for s in index.samples] == [2, 1, 0, 2, 1, 0]
    assert [s.label for s in index.samples] == ["defect", "defect", "ok"] * 2
    assert [s.group for s in index.samples] == ["C0001"] * 3 + ["C0002"] * 3
    assert first.get_meta("series") == "C0001" and first.get_meta("image_index") == "1"
    assert index.classes == ["ok", "defect"]


def test_gdxray_welds_take_masks_from_parallel_series(tmp_path: Path):
    root = make_gdxray_dataset(tmp_path, series=(), welds=2)
    index = load_dataset(root)
    assert [s.image.name for s in index.samples] == ["W0001_0001.png", "W0001_0002.png"]
    assert [s.mask.name for s in index.samples] == ["W0002_0001.png", "W0002_0002.png"]
    assert [s.group for s in index.samples] == ["W0001_0001", "W0001_0002"]
    assert all(s.defective and len(s.boxes) == 1 for s in index.samples)
    # One series folder as the root works too (the mask series is found beside it).
    single = load_dataset(root / "W0001", format="gdxray")
    assert [s.mask for s in single.samples] == [s.mask for s in index.samples]


def test_gdxray_missing_image_named_by_ground_truth(tmp_path: Path):
    root = make_gdxray_dataset(tmp_path, series=("C0001",), images=3)
    (root / "C0001" / "C0001_0002.png").unlink()
    with pytest.raises(ImageReadError, match="C0001_0002.png.*missing.*on_bad_file=\"skip\""):
        load_dataset(root)
    index = load_dataset(root, on_bad_file="skip")
    assert len(index) == 2 and [s.path.name for s in index.skipped] == ["C0001_0002.png"]


def test_gdxray_malformed_ground_truth(tmp_path: Path):
    root = make_gdxray_dataset(tmp_path, series=("C0001",))
    (root / "C0001" / "ground_truth.txt").write_text("1 2 3\n")
    with pytest.raises(DatasetError, match="ground_truth.txt has 3 columns"):
        load_dataset(root)
    (root / "C0001" / "ground_truth.txt").write_text("1 10 5 1 4\n")  # x2 < x1
    with pytest.raises(DatasetError, match="ground_truth.txt row 1: box"):
        load_dataset(root)


# ------------------------------------------------------------------------------------ other formats


def test_magnetic_tile_classes_and_flaw_types(tmp_path: Path):
    index = load_dataset(make_magnetic_tile_dataset(tmp_path))
    assert index.classes == ["free", "blowhole", "crack"]
    assert index.defective_classes == {"blowhole", "crack"}
    crack = next(s for s in index.samples if s.label == "crack")
    assert crack.flaw_types == ("crack",) and crack.mask == crack.image.with_suffix(".png")
    assert crack.group == crack.image.stem
    assert all(s.flaw_types == () for s in index.samples if s.label == "free")


def test_magnetic_tile_missing_mask(tmp_path: Path):
    root = make_magnetic_tile_dataset(tmp_path, {"Crack": 2})
    (root / "MT_Crack" / "Imgs" / "exp0_num_1.png").unlink()
    with pytest.raises(ImageReadError, match="exp0_num_1.jpg.*mask exp0_num_1.png is missing"):
        load_dataset(root)
    assert len(load_dataset(root, on_bad_file="skip")) == 1


def test_mvtec_splits_types_and_masks(tmp_path: Path):
    index = load_dataset(make_mvtec_dataset(tmp_path / "mvtec", defects={"crack": 1, "scratch": 1}))
    assert Counter(s.split for s in index.samples) == {"train": 3, "test": 3}
    bad = [s for s in index.samples if s.defective]
    assert [(s.flaw_types, s.mask.name) for s in bad] == [
        (("crack",), "000_mask.png"), (("scratch",), "000_mask.png")]
    assert len({s.group for s in index.samples}) == 6  # 000.png repeats but each image is its own group
    assert index.samples[0].get_meta("category") == "bottle"
    # The category folder itself is a valid root too.
    assert len(load_dataset(tmp_path / "mvtec" / "bottle")) == 6


def test_dagm_labels_and_masks(tmp_path: Path):
    index = load_dataset(make_dagm_dataset(tmp_path, classes=2))
    assert len(index) == 12
    bad = [s for s in index.samples if s.defective]
    assert all(s.mask.name == f"{s.image.stem}_label.PNG" for s in bad)
    assert Counter(s.split for s in index.samples) == {"train": 8, "test": 4}
    assert len({s.group for s in index.samples}) == 12


def test_dagm_malformed_labels(tmp_path: Path):
    root = make_dagm_dataset(tmp_path)
    (root / "Class1" / "Train" / "Label" / "Labels.txt").write_text("1\n1\t7\t0001.PNG\t0\t0\n")
    with pytest.raises(DatasetError, match="Labels.txt line 2: expected 5 tab-separated"):
        load_dataset(root)


def test_neu_finds_misplaced_xml_and_converts_voc_boxes(tmp_path: Path):
    root = make_neu_dataset(tmp_path)
    assert (root / "validation" / "annotations" / "crazing_1.xml").is_file()
    index = load_dataset(root)
    assert index.classes == ["crazing", "scratches"] and index.defective_classes == {"crazing", "scratches"}
    assert all(len(s.boxes) == 1 for s in index.samples)
    first = index.samples[[s.image.name for s in index.samples].index("crazing_1.jpg")]
    assert first.boxes == (Box(*DEFECT_BOX, label="crazing"),)  # VOC 1-based inclusive -> 0-based exclusive
    assert first.split == "train" and first.flaw_types == ("crazing",)
    assert Counter(s.split for s in index.samples) == {"train": 4, "test": 2}


@pytest.mark.parametrize("old_layout", [False, True])
def test_severstal_rle_masks(tmp_path: Path, old_layout: bool):
    from flawscope.data.io import load_mask

    index = load_dataset(make_severstal_dataset(tmp_path, old_layout=old_layout))
    first = index.samples[0]
    assert first.flaw_types == ("class_1", "class_3")
    assert all(isinstance(m, RleMask) and (m.height, m.width) == (32, 64) for m in first.mask)
    _, want = tiny_image(0, True, size=(32, 64))
    got = load_mask(first.mask)
    assert got[want].all() and got[0:4, 40:50].all() and got.sum() == want.sum() + 40
    ok = index.samples[-1]
    assert ok.defective is False and ok.mask == (RleMask("", 32, 64),) and not load_mask(ok.mask).any()


def test_severstal_csv_names_missing_image(tmp_path: Path):
    root = make_severstal_dataset(tmp_path)
    (root / "train_images" / f"{0:08x}a.jpg").unlink()
    with pytest.raises(ImageReadError, match="listed in .*train.csv"):
        load_dataset(root)
    assert len(load_dataset(root, on_bad_file="skip")) == 3


# ---------------------------------------------------------------------------------------------- manifest


def test_manifest_columns(tmp_path: Path):
    root = make_manifest_dataset(tmp_path, extra_columns={"meta_source": ["scanner1"] * 4})
    for where in (root, root / "manifest.csv"):
        index = load_dataset(where)
        assert index.root == root / "manifest.csv"
        first = index.samples[0]
        assert first.flaw_types == ("pore", "crack") and first.boxes == (Box(*DEFECT_BOX),)
        assert first.mask == root / "masks" / "im_0.png" and first.group == "part0"
        assert first.get_meta("source") == "scanner1"
        assert [s.split for s in index.samples] == ["train", "train", "val", "test"]
        assert [s.defective for s in index.samples] == [True, True, False, False]
        assert index.classes == ["ok", "defect"] and index.defective_classes == {"defect"}


def test_manifest_unknown_column_lists_valid_ones(tmp_path: Path):
    root = make_manifest_dataset(tmp_path, extra_columns={"colour": ["red"] * 4})
    with pytest.raises(DatasetError, match=r"unknown columns \['colour'\]; valid columns are path, label"):
        load_dataset(root)


def test_manifest_defective_from_label_rule_and_bad_values(tmp_path: Path):
    save(tmp_path / "a.png", tiny_image(0, False)[0])
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,label,boxes\na.png,good,\na.png,crack,1 1 5 5 pore;2 2 4 6\n")
    index = load_dataset(csv_path)
    assert index.classes == ["good", "crack"] and [s.defective for s in index.samples] == [False, True]
    assert [b.label for b in index.samples[1].boxes] == ["pore", "defect"]
    csv_path.write_text("path,label,split\na.png,good,holdout\n")
    with pytest.raises(DatasetError, match="list.csv line 2: split 'holdout'"):
        load_dataset(csv_path)
    csv_path.write_text("path,label,boxes\na.png,good,1 2 3\n")
    with pytest.raises(DatasetError, match="line 2: box '1 2 3' is not 'x1 y1 x2 y2'"):
        load_dataset(csv_path)


def test_manifest_crop_column(tmp_path: Path):
    save(tmp_path / "a.png", tiny_image(0, False)[0])
    (tmp_path / "manifest.csv").write_text("path,label,crop\na.png,ok,0 0 16 16\na.png,ok,16 16 16 16\n")
    index = load_dataset(tmp_path)
    assert [s.crop for s in index.samples] == [(0, 0, 16, 16), (16, 16, 16, 16)]


# ---------------------------------------------------------------------------------------------- bad files


def _with_bad_files(tmp_path: Path) -> Path:
    root = make_folders_dataset(tmp_path, {"ok": 2, "defect": 2})
    (root / "ok" / "empty.png").write_bytes(b"")
    (root / "defect" / "page.png").write_text("<html>404 Not Found</html>")
    return root


def test_bad_file_raises_naming_file_and_way_out(tmp_path: Path):
    root = _with_bad_files(tmp_path)
    with pytest.raises(ImageReadError) as err:
        load_dataset(root)
    assert "page.png" in str(err.value) and 'on_bad_file="skip"' in str(err.value)
    assert "--on-bad-file skip" in str(err.value)
    assert isinstance(err.value, FlawscopeError)


def test_bad_files_skipped_with_reasons(tmp_path: Path):
    index = load_dataset(_with_bad_files(tmp_path), on_bad_file="skip")
    assert len(index) == 4
    assert sorted(s.path.name for s in index.skipped) == ["empty.png", "page.png"]
    assert all("unreadable" in s.reason for s in index.skipped)


def test_check_none_reads_no_headers(tmp_path: Path):
    index = load_dataset(_with_bad_files(tmp_path), check="none")
    assert len(index) == 6 and index.skipped == []


def test_bad_mask_skips_its_image(tmp_path: Path):
    root = make_image_mask_dataset(tmp_path, n=3)
    (root / "masks" / "img_001_mask.png").write_bytes(b"")
    index = load_dataset(root, on_bad_file="skip")
    assert [s.image.name for s in index.samples] == ["img_000.png", "img_002.png"]
    assert sorted(s.path.name for s in index.skipped) == ["img_001.png", "img_001_mask.png"]


def test_mask_of_another_size_is_refused_when_indexed(tmp_path: Path):
    root = make_image_mask_dataset(tmp_path, n=3)
    save(root / "masks" / "img_001_mask.png", np.zeros((16, 24), bool))
    with pytest.raises(DatasetError) as err:
        load_dataset(root)
    msg = str(err.value)
    assert "img_001_mask.png is 16×24" in msg and "img_001.png is 32×32" in msg
    assert "re-export the mask at 32×32" in msg and "--on-bad-file skip" in msg
    index = load_dataset(root, on_bad_file="skip")
    assert [s.image.name for s in index.samples] == ["img_000.png", "img_002.png"]
    assert sorted(s.path.name for s in index.skipped) == ["img_001.png", "img_001_mask.png"]
    assert len(load_dataset(root, check="none")) == 3  # no headers read, nothing compared


# ------------------------------------------------------------------------------------- detection and options


def test_detect_format_lists_formats_when_nothing_matches(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="matches none of the known layouts") as err:
        detect_format(tmp_path)
    assert all(name in str(err.value) for name in ALL_FORMATS)
    with pytest.raises(DatasetError, match="does not exist"):
        detect_format(tmp_path / "nope")


def test_load_dataset_option_errors(tmp_path: Path):
    root = make_folders_dataset(tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset format 'folder'. Did you mean 'folders'"):
        load_dataset(root, format="folder")
    with pytest.raises(ConfigError, match="on_bad_file must be"):
        load_dataset(root, on_bad_file="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="check must be"):
        load_dataset(root, check="full")  # type: ignore[arg-type]


def test_wrong_format_for_folder_says_so(tmp_path: Path):
    root = make_folders_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no GDXray series folders"):
        load_dataset(root, format="gdxray")


def test_register_source_refuses_duplicates():
    with pytest.raises(ConfigError, match="already registered"):
        register_source("folders")(lambda root, ctx: None)


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_real_gdxray_castings(shared_data: Path):
    index = load_dataset(shared_data / "gdxray-castings")
    assert index.format == "gdxray"
    assert len(index) == 772
    assert len({s.get_meta("series") for s in index.samples}) == 18 == len({s.group for s in index.samples})
    assert sum(len(s.boxes) for s in index.samples) == 2133
    assert sum(bool(s.boxes) for s in index.samples) == 446
    assert sum(s.defective for s in index.samples) == 446


@pytest.mark.real_data
def test_real_gdxray_welds(shared_data: Path):
    index = load_dataset(shared_data / "gdxray-welds")
    assert len(index) == 7
    assert all(s.mask is not None and s.mask.parent.name == "W0002" for s in index.samples)
    assert all(s.mask.name.replace("W0002", "W0001") == s.image.name for s in index.samples)


@pytest.mark.real_data
def test_real_magnetic_tile(shared_data: Path):
    index = load_dataset(shared_data / "magnetic-tile")
    assert index.format == "magnetic_tile"
    assert Counter(s.label for s in index.samples) == {
        "blowhole": 115, "break": 85, "crack": 57, "fray": 32, "uneven": 103, "free": 952}
    assert all(s.mask is not None for s in index.samples)
    assert sum(s.defective for s in index.samples) == 392


@pytest.mark.real_data
def test_real_neu(shared_data: Path):
    index = load_dataset(shared_data / "neu-det")
    assert index.format == "neu"
    assert len(index.classes) == 6
    assert Counter(s.label for s in index.samples) == {c: 300 for c in index.classes}
    assert index.defective_classes == set(index.classes)
    assert all(s.boxes and s.get_meta("annotation") for s in index.samples)  # a box xml for each image
    crazing_240 = next(s for s in index.samples if s.image.name == "crazing_240.jpg")
    assert crazing_240.split == "train" and "validation" in crazing_240.get_meta("annotation")
