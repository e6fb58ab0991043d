"""`summarize` and `flawscope data summary / formats` on tiny datasets (and GDXray when present)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flawscope.data.labels import defective_from_mask
from flawscope.data.sources import list_formats, load_dataset
from flawscope.data.summary import summarize
from flawscope.errors import FlawscopeError
from helpers.datasets import (
    make_folders_dataset,
    make_gdxray_dataset,
    make_image_mask_dataset,
    make_manifest_dataset,
    save,
    tiny_image,
)


def kinds(summary) -> list[str]:
    return [p.kind for p in summary.problems]


def test_counts_and_histograms(tmp_path: Path):
    root = make_manifest_dataset(tmp_path)
    save(tmp_path / "images" / "big.png", np.zeros((40, 48), np.uint16))  # a 16-bit image of another size
    with (root / "manifest.csv").open("a") as f:
        f.write("images/big.png,ok,,part9,train,,,0\n")
    s = summarize(load_dataset(root))
    assert (s.num_samples, s.num_images, s.num_groups) == (5, 5, 3)
    assert s.classes == {"ok": 3, "defect": 2}
    assert s.splits == {"train": 3, "val": 1, "test": 1}
    assert (s.defective, s.ok, s.unknown) == (2, 3, 0)
    assert s.image_sizes == {"32x32": 4, "40x48": 1}
    assert s.bit_depths == {8: 4, 16: 1} and s.channels == {1: 5}
    assert (s.masks, s.boxes, s.images_with_boxes) == (2, 2, 2)
    assert s.flaw_types == {"pore": 2, "crack": 1}
    assert s.problems == [] and not s.has_errors
    d = json.loads(json.dumps(s.to_dict()))
    assert d["bit_depths"] == {"8": 4, "16": 1} and d["classes"]["ok"] == 3


def test_duplicates_across_classes_and_groups(tmp_path: Path):
    root = make_folders_dataset(tmp_path, {"ok": 2, "defect": 2})
    shutil.copy(root / "ok" / "ok_000.png", root / "defect" / "copy.png")
    s = summarize(load_dataset(root))
    assert kinds(s).count("duplicate") == 1
    dup = s.problems_of("duplicate")[0]
    assert sorted(Path(p).name for p in dup.paths) == ["copy.png", "ok_000.png"]
    assert s.problems_of("duplicate_conflicting_labels") and s.problems_of("duplicate_across_groups")
    assert s.has_errors


def test_duplicates_across_fixed_splits(tmp_path: Path):
    root = make_manifest_dataset(tmp_path)
    shutil.copy(root / "images" / "im_2.png", root / "images" / "im_2_copy.png")
    with (root / "manifest.csv").open("a") as f:
        f.write("images/im_2_copy.png,ok,,part1,train,,,0\n")  # im_2 is in val, same group
    s = summarize(load_dataset(root))
    across = s.problems_of("duplicate_across_splits")
    assert len(across) == 1 and across[0].severity == "error" and "train, val" in across[0].message
    assert not s.problems_of("duplicate_across_groups")


def test_no_duplicate_reported_for_distinct_files(tmp_path: Path):
    s = summarize(load_dataset(make_folders_dataset(tmp_path)))
    assert not [k for k in kinds(s) if k.startswith("duplicate")]


def test_mask_size_mismatch(tmp_path: Path):
    root = make_image_mask_dataset(tmp_path, n=3)
    save(root / "masks" / "img_001_mask.png", np.zeros((16, 32), bool))
    # A header-checked index refuses the pair already (test_sources); summarize catches it in a listing too.
    s = summarize(load_dataset(root, check="none"))
    [p] = s.problems_of("mask_size_mismatch")
    assert "16×32" in p.message and "32×32" in p.message and "img_001.png" in p.message


def test_empty_class_folder_and_single_class(tmp_path: Path):
    root = make_folders_dataset(tmp_path, {"defect": 2}, empty=["ok"])
    s = summarize(load_dataset(root))
    assert "empty_class" in kinds(s) and "single_class" in kinds(s)
    assert "ok" in s.problems_of("empty_class")[0].message


def test_two_classes_no_single_class_warning(tmp_path: Path):
    s = summarize(load_dataset(make_folders_dataset(tmp_path)))
    assert "single_class" not in kinds(s)


def test_gdxray_series_without_boxes_warns_single_class(tmp_path: Path):
    root = make_gdxray_dataset(tmp_path, series=("C0001",))
    (root / "C0001" / "ground_truth.txt").write_text("")
    s = summarize(load_dataset(root))
    assert s.classes == {"ok": 3, "defect": 0}
    assert kinds(s) == ["single_class"]


def test_skipped_and_unreadable_files(tmp_path: Path):
    root = make_folders_dataset(tmp_path)
    (root / "ok" / "broken.png").write_bytes(b"")
    assert kinds(summarize(load_dataset(root, on_bad_file="skip"))) == ["skipped"]
    s = summarize(load_dataset(root, check="none"))  # not checked while indexing: found by the summary
    [p] = s.problems_of("unreadable")
    assert p.severity == "error" and "broken.png" in p.message
    assert s.num_images == 6 and sum(s.image_sizes.values()) == 5


def _with_bad_files(root: Path) -> Path:
    """A folders dataset plus a truncated JPEG (its header reads fine), a zero-byte PNG and a broken mask."""
    from helpers.images import write_truncated_jpeg, write_zero_byte

    write_truncated_jpeg(root / "ok" / "cut.jpg", 32, 32)
    write_zero_byte(root / "defect" / "empty.png")
    return root


def test_decode_names_every_unreadable_file(tmp_path: Path):
    root = _with_bad_files(make_folders_dataset(tmp_path / "ds"))
    index = load_dataset(root, on_bad_file="skip")
    assert [p.path.name for p in index.skipped] == ["empty.png"]  # the header of cut.jpg reads fine
    headers = summarize(index, decode=False)
    assert not headers.decoded and "cut.jpg" not in " ".join(p.message for p in headers.problems)
    s = summarize(index)  # 6 images: at most 2000, so decoded by default
    assert s.decoded
    bad = {Path(path).name for p in s.problems if p.severity == "error" for path in p.paths}
    assert bad == {"cut.jpg", "empty.png"}
    [cut] = [p for p in s.problems if p.paths == (str(root / "ok" / "cut.jpg"),)]
    assert cut.kind == "unreadable" and "cut.jpg" in cut.message
    assert s.to_dict()["decoded"] is True


def test_decode_checks_mask_files_too(tmp_path: Path):
    root = make_manifest_dataset(tmp_path)
    (root / "masks" / "im_0.png").write_bytes((root / "masks" / "im_0.png").read_bytes()[:60])
    s = summarize(load_dataset(root, on_bad_file="skip"), decode=True)
    assert any(p.paths and p.paths[-1].endswith("masks/im_0.png") and p.severity == "error"
               for p in s.problems), s.problems


def test_decode_default_depends_on_the_number_of_images(tmp_path: Path, monkeypatch):
    import flawscope.data.summary as summary_mod

    index = load_dataset(make_folders_dataset(tmp_path))
    monkeypatch.setattr(summary_mod, "DECODE_MAX_IMAGES", 4)
    assert not summarize(index).decoded  # 5 images > 4: headers only unless asked
    assert summarize(index, decode=True).decoded


def test_deep_decides_defective_from_masks(tmp_path: Path):
    index = load_dataset(make_image_mask_dataset(tmp_path, n=4, defective=1))
    shallow = summarize(index)
    assert (shallow.defective, shallow.ok, shallow.unknown) == (0, 0, 4)
    deep = summarize(index, deep=True)
    assert (deep.defective, deep.ok, deep.unknown) == (1, 3, 0) and deep.deep
    assert [defective_from_mask(s) for s in index.samples] == [True, False, False, False]


def test_deep_flags_masks_that_contradict_labels(tmp_path: Path):
    root = make_manifest_dataset(tmp_path)
    img, mask = tiny_image(7, True)
    save(root / "masks" / "ok_mask.png", mask)
    save(root / "masks" / "empty.png", np.zeros_like(mask))
    text = (root / "manifest.csv").read_text().replace("masks/im_1.png", "masks/empty.png")
    text = text.replace("images/im_2.png,ok,,", "images/im_2.png,ok,masks/ok_mask.png,")
    (root / "manifest.csv").write_text(text)
    s = summarize(load_dataset(root), deep=True)
    assert [p.paths[0].endswith("im_2.png") for p in s.problems_of("mask_on_ok")] == [True]
    assert [p.paths[0].endswith("im_1.png") for p in s.problems_of("empty_mask_on_defective")] == [True]
    assert "mask_on_ok" not in kinds(summarize(load_dataset(root)))  # shallow mode decodes no mask


def test_crop_outside_image(tmp_path: Path):
    save(tmp_path / "a.png", tiny_image(0, False)[0])
    (tmp_path / "manifest.csv").write_text("path,label,crop\na.png,ok,0 0 16 16\na.png,ok,20 20 16 16\n")
    s = summarize(load_dataset(tmp_path))
    [p] = s.problems_of("crop_outside_image")
    assert "(20, 20, 16, 16)" in p.message and p.severity == "error"
    assert s.num_samples == 2 and s.num_images == 1


# -------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def cli():
    from flawscope.cli.main import app

    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


def test_cli_summary_prints_tables_and_writes_json(tmp_path: Path, cli):
    root = make_folders_dataset(tmp_path / "ds", {"ok": 2, "crack": 1})
    out = tmp_path / "out" / "summary.json"
    result = cli("data", "summary", root, "--json", out)
    assert result.exit_code == 0, result.output
    assert "classes" in result.output and "crack" in result.output and "32x32" in result.output
    data = json.loads(out.read_text())
    assert data["format"] == "folders" and data["classes"] == {"ok": 2, "crack": 1}


def test_cli_summary_options(tmp_path: Path, cli):
    root = make_folders_dataset(tmp_path, {"a": 2, "b": 1})
    (root / "a" / "bad.png").write_bytes(b"")
    result = cli("data", "summary", root, "--defective-class", "b", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["defective_classes"] == ["b"] and data["skipped"] == 1 and data["defective"] == 1
    result = cli("data", "summary", root, "--ok-class", "a", "--json", tmp_path / "ok.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ok.json").read_text())["defective_classes"] == ["b"]
    both = cli("data", "summary", root, "--ok-class", "a", "--defective-class", "b")
    assert isinstance(both.exception, FlawscopeError) and "not both" in str(both.exception)
    assert cli("data", "summary", root, "--on-bad-file", "ignore").exit_code == 2


def test_cli_summary_lists_every_bad_file(tmp_path: Path, cli):
    root = _with_bad_files(make_folders_dataset(tmp_path / "ds"))
    for args in ([], ["--on-bad-file", "error"], ["--on-bad-file", "skip"]):
        result = cli("data", "summary", root, *args, "--json", tmp_path / "s.json")
        assert result.exit_code == 0, result.output
        problems = json.loads((tmp_path / "s.json").read_text())["problems"]
        named = {Path(path).name for p in problems if p["severity"] == "error" for path in p["paths"]}
        assert named == {"cut.jpg", "empty.png"}
        assert "cut.jpg" in result.output and "empty.png" in result.output
    result = cli("data", "summary", root, "--no-decode", "--json", tmp_path / "h.json")
    assert result.exit_code == 0 and "cut.jpg" not in result.output
    assert json.loads((tmp_path / "h.json").read_text())["decoded"] is False


def test_cli_formats_lists_all(cli):
    result = cli("data", "formats")
    assert result.exit_code == 0
    assert all(name in result.output for name in list_formats())


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_real_gdxray_summary_is_quick(shared_data: Path):
    index = load_dataset(shared_data / "gdxray-castings", check="none")
    start = time.perf_counter()
    s = summarize(index)
    elapsed = time.perf_counter() - start
    assert (s.num_images, s.num_groups, s.boxes, s.images_with_boxes) == (772, 18, 2133, 446)
    assert s.bit_depths == {8: 772}
    assert elapsed < 30, f"summary of 772 images took {elapsed:.1f} s"  # 2 shared CPU cores: generous bound
