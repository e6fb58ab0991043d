"""`flawscope data` commands on tiny datasets, and the manifest writer they use."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.data.sources import load_dataset
from flawscope.data.sources.manifest import write_manifest
from helpers.datasets import make_folders_dataset, make_gdxray_dataset, make_manifest_dataset

runner = CliRunner()


def test_write_manifest_round_trips(tmp_path: Path) -> None:
    root = make_manifest_dataset(tmp_path / "ds")
    index = load_dataset(root)
    out = write_manifest(index, tmp_path / "copy" / "manifest.csv")
    again = load_dataset(out)
    assert [s.image.resolve() for s in again.samples] == [s.image.resolve() for s in index.samples]
    for a, b in zip(again.samples, index.samples, strict=True):
        assert (a.label, a.defective, a.group, a.split, a.boxes, a.flaw_types, a.crop) == (
            b.label, b.defective, b.group, b.split, b.boxes, b.flaw_types, b.crop)
        assert (a.mask is None) == (b.mask is None)


def test_data_patches_and_split_commands(tmp_path: Path) -> None:
    root = make_gdxray_dataset(tmp_path / "gdx")
    manifest = tmp_path / "patches" / "manifest.csv"
    result = runner.invoke(app, ["data", "patches", str(root), "--xdefects", "--size", "16",
                                 "--out", str(manifest)])
    assert result.exit_code == 0, result.output
    patches = load_dataset(manifest)
    assert patches.format == "manifest" and len(patches) > 0
    assert all(s.crop is not None and s.crop[2:] == (16, 16) for s in patches.samples)
    assert {s.defective for s in patches.samples} == {True, False}

    split_csv = tmp_path / "split.csv"
    result = runner.invoke(app, ["data", "split", str(manifest), "--out", str(split_csv),
                                 "--val-fraction", "0.3", "--test-fraction", "0.3", "--no-by-group"])
    assert result.exit_code == 0, result.output
    assert split_csv.read_text().startswith("# flawscope split seed=0")


def test_data_summary_unknown_format_is_clear(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["data", "summary", str(tmp_path / "empty")])
    assert result.exit_code != 0
    assert "format" in str(result.exception or result.output).lower()


def test_data_split_takes_ok_classes(tmp_path: Path) -> None:
    root = make_folders_dataset(tmp_path / "ds", {"class_0": 6, "class_1": 6})
    out = tmp_path / "split.csv"
    args = ["data", "split", str(root), "--out", str(out), "--val-fraction", "0.25",
            "--test-fraction", "0.25"]
    refused = runner.invoke(app, args)  # every class is defective: no ok sample for the parts
    assert refused.exit_code != 0
    result = runner.invoke(app, [*args, "--ok-class", "class_0"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert out.read_text().splitlines()[1] == "path,crop,label,group,split"
