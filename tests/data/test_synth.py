"""Synthetic radiographs (`flawscope.data.synth`) and `flawscope synth`."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from flawscope.data import synth
from flawscope.data.io import read_raw, write_image
from flawscope.data.synth import (
    SynthConfig,
    generate_dataset,
    render_radiograph,
    summarize_dataset,
    superimpose_dataset,
    superimpose_flaws,
)
from flawscope.errors import ConfigError, DatasetError, FlawscopeError

# Small and fast: 64 px images, small flaws.
TINY = SynthConfig(n_images=6, size=(64, 64), flaw_size=(3.0, 8.0), n_parts=3, seed=7, part="mixed")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _render(i: int, cfg: SynthConfig = TINY, defective: bool | None = True) -> synth.SynthImage:
    return render_radiograph(np.random.default_rng(cfg.seed + i), cfg, defective)


# --------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate_dataset(tmp_path / "a", TINY)
    b = generate_dataset(tmp_path / "b", TINY)
    fa, fb = _files(a), _files(b)
    assert len(fa) == 2 * TINY.n_images + 2
    assert fa == fb
    c = generate_dataset(tmp_path / "c", replace(TINY, seed=8))
    assert _files(c)["images/synth_00000.png"] != fa["images/synth_00000.png"]


def test_image_i_does_not_depend_on_count_or_workers(tmp_path):
    small = _files(generate_dataset(tmp_path / "small", replace(TINY, n_images=3)))
    big_cfg = replace(TINY, n_images=40)  # 2 chunks of 32: really uses 2 processes
    big = _files(generate_dataset(tmp_path / "big", big_cfg, workers=2))
    for i in range(3):
        for sub in ("images", "masks"):
            assert small[f"{sub}/synth_{i:05d}.png"] == big[f"{sub}/synth_{i:05d}.png"]
    serial = _files(generate_dataset(tmp_path / "serial", big_cfg))
    assert serial == big
    rows_small = _manifest(tmp_path / "small")
    assert rows_small == _manifest(tmp_path / "big")[:3]


def test_defective_flag_changes_only_the_flaws():
    # Part, view and noise come from their own streams: with and without flaws the radiograph is the same.
    cfg = replace(TINY, flaw_types=("pore",))
    with_flaws, without = _render(0, cfg, True), _render(0, cfg, False)
    assert with_flaws.part_id == without.part_id
    assert with_flaws.mask.any() and not without.mask.any()
    far = ~ndimage.binary_dilation(with_flaws.mask, iterations=6)
    np.testing.assert_array_equal(with_flaws.image[far], without.image[far])


# ---------------------------------------------------------------------------------------- image and labels


def test_images_are_16_bit_and_use_the_range(tmp_path):
    out = generate_dataset(tmp_path / "d", TINY)
    for row in _manifest(out):
        raw = read_raw(out / row["path"])
        assert raw.pixels.dtype == np.uint16 and raw.bit_depth == 16
        assert raw.pixels.shape == (64, 64)
        assert raw.pixels.max() > 0.75 * 65535  # auto-exposure puts the brightest part near the top
        assert len(np.unique(raw.pixels)) > 256  # more grey levels than 8 bits could hold


def test_8_bit_output(tmp_path):
    out = generate_dataset(tmp_path / "d", replace(TINY, n_images=2, bit_depth=8))
    raw = read_raw(out / "images" / "synth_00000.png")
    assert raw.pixels.dtype == np.uint8 and raw.pixels.max() > 0.75 * 255


def test_masks_match_boxes_and_labels():
    seen = set()
    for i in range(12):
        r = _render(i)
        assert r.mask.dtype == np.bool_ and r.mask.shape == r.image.shape
        assert r.mask.any() and r.boxes and r.defective
        covered = np.zeros_like(r.mask)
        for b in r.boxes:
            sl = (slice(int(b.y1), int(b.y2)), slice(int(b.x1), int(b.x2)))
            inside = r.mask[sl]
            # Tight: the flaw touches all four sides of its box.
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            covered[sl] = True
            assert b.label in synth.FLAW_TYPES
        assert not (r.mask & ~covered).any(), "every flaw pixel lies in a box"
        # A box is labelled with its main flaw type; a type hidden inside another flaw's box still counts.
        assert {b.label for b in r.boxes} <= set(r.flaw_types)
        seen |= set(r.flaw_types)
    assert seen == set(synth.FLAW_TYPES)


@pytest.mark.parametrize("kind", synth.FLAW_TYPES)
def test_flaw_types_follow_the_config(kind):
    cfg = replace(TINY, flaw_types=(kind,))
    for i in range(4):
        r = _render(i, cfg)
        assert r.flaw_types == (kind,)
        assert {b.label for b in r.boxes} == {kind}


def test_defect_free_images_have_empty_masks(tmp_path):
    cfg = replace(TINY, n_images=20, defect_fraction=0.3)
    out = generate_dataset(tmp_path / "d", cfg)
    rows = _manifest(out)
    n_defective = sum(r["defective"] == "1" for r in rows)
    assert abs(n_defective - 0.3 * 20) <= 1  # the golden-ratio sequence hits the fraction closely
    for row in rows:
        mask = read_raw(out / row["mask"]).pixels
        assert set(np.unique(mask)) <= {0, 255}
        if row["defective"] == "0":
            assert row["label"] == "ok" and not mask.any() and row["boxes"] == "" and row["flaw_types"] == ""
        else:
            assert row["label"] == "defect" and mask.any() and row["boxes"] and row["flaw_types"]
    none = generate_dataset(tmp_path / "none", replace(TINY, n_images=5, defect_fraction=0.0))
    assert all(r["defective"] == "0" for r in _manifest(none))


def test_voids_are_brighter_and_inclusions_darker():
    # Same radiograph with and without its flaws: voids let more dose through, inclusions less.
    for kind, sign in (("pore", 1), ("crack", 1), ("inclusion", -1)):
        cfg = replace(TINY, flaw_types=(kind,), difficulty=0.3)
        changes = []
        for i in range(5):
            flawed, clean = _render(i, cfg, True), _render(i, cfg, False)
            m = flawed.mask
            ratio = flawed.image[m].astype(float).mean() / clean.image[m].astype(float).mean()
            changes.append(sign * (ratio - 1))
        assert min(changes) > 0.005, (kind, changes)


def test_pores_are_brighter_than_their_surroundings():
    cfg = replace(TINY, size=(96, 96), flaw_types=("pore",), difficulty=0.2, noise=0.5, part="plate")
    brighter, total = 0, 0
    for i in range(10):
        r = _render(i, cfg)
        img = r.image.astype(float)
        for b in r.boxes:
            own = np.zeros_like(r.mask)
            sl = (slice(int(b.y1), int(b.y2)), slice(int(b.x1), int(b.x2)))
            own[sl] = r.mask[sl]
            ring = ndimage.binary_dilation(own, iterations=3) & ~ndimage.binary_dilation(r.mask, iterations=1)
            brighter += img[own].mean() > img[ring].mean()
            total += 1
    assert total >= 10 and brighter / total >= 0.8, (brighter, total)


def test_difficulty_controls_contrast():
    def mean_contrast(difficulty: float) -> float:
        cfg = replace(TINY, flaw_types=("pore",), difficulty=difficulty)
        vals = []
        for i in range(6):
            f, c = _render(i, cfg, True), _render(i, cfg, False)
            vals.append(f.image[f.mask].astype(float).mean() / c.image[f.mask].astype(float).mean() - 1)
        return float(np.mean(vals))

    assert mean_contrast(0.0) > 2 * mean_contrast(1.0) > 0


def test_views_of_one_part_share_its_group(tmp_path):
    out = generate_dataset(tmp_path / "d", replace(TINY, n_images=12, n_parts=2))
    groups = {r["group"] for r in _manifest(out)}
    assert groups <= {"part_000", "part_001"} and len(groups) == 2


# ----------------------------------------------------------------------------------------------- manifest


def test_manifest_is_plain_csv(tmp_path):
    out = generate_dataset(tmp_path / "d", TINY)
    with open(out / "manifest.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    assert header == ["path", "label", "mask", "group", "flaw_types", "boxes", "defective"]
    assert len(body) == TINY.n_images
    for row in body:
        assert (out / row[0]).is_file() and (out / row[2]).is_file()
        for box in filter(None, row[5].split(";")):
            x1, y1, x2, y2, label = box.split()
            assert 0 <= float(x1) < float(x2) <= 64 and 0 <= float(y1) < float(y2) <= 64
            assert label in synth.FLAW_TYPES
    cfg_doc = (out / "synth_config.yaml").read_text()
    assert "generator: flawscope.data.synth" in cfg_doc
    import yaml

    assert SynthConfig.from_dict(yaml.safe_load(cfg_doc)["config"]) == TINY


def test_manifest_loads_as_a_flawscope_dataset(tmp_path):
    from flawscope.data.sources import load_dataset

    out = generate_dataset(tmp_path / "d", replace(TINY, n_images=8))
    index = load_dataset(out)
    assert len(index) == 8 and index.format == "manifest"
    rows = _manifest(out)
    for sample, row in zip(index.samples, rows, strict=True):
        assert sample.defective == (row["defective"] == "1")
        assert sample.group == row["group"]
        assert len(sample.boxes) == len(list(filter(None, row["boxes"].split(";"))))
        assert sample.mask is not None


def test_summary_counts_boxes(tmp_path):
    out = generate_dataset(tmp_path / "d", TINY)
    s = summarize_dataset(out)
    rows = _manifest(out)
    assert s.n_images == TINY.n_images and s.n_defective == sum(r["defective"] == "1" for r in rows)
    assert sum(s.flaws.values()) == sum(len(list(filter(None, r["boxes"].split(";")))) for r in rows)
    assert "images/min" in s.line(1.0)


# ------------------------------------------------------------------------------------------ output folder


def test_refuses_non_empty_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match=r"mine.*--overwrite"):
        generate_dataset(out, TINY)
    assert not (out / "images").exists()
    # --overwrite writes beside unrelated files and never deletes them.
    generate_dataset(out, replace(TINY, n_images=2), overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"


def test_refuses_foreign_dataset_even_with_overwrite(tmp_path):
    out = tmp_path / "other"
    (out / "images").mkdir(parents=True)
    (out / "images" / "x.png").write_bytes(b"not ours")
    with pytest.raises(DatasetError, match="images"):
        generate_dataset(out, TINY, overwrite=True)
    assert (out / "images" / "x.png").read_bytes() == b"not ours"


def test_overwrite_replaces_only_previous_synth_files(tmp_path):
    out = generate_dataset(tmp_path / "d", replace(TINY, n_images=5))
    with pytest.raises(DatasetError, match="previous synth dataset"):
        generate_dataset(out, TINY)
    (out / "images" / "user.png").write_bytes(b"user")
    generate_dataset(out, replace(TINY, n_images=3), overwrite=True)
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "synth_00000.png", "synth_00001.png", "synth_00002.png", "user.png"
    ]
    assert len(_manifest(out)) == 3


# ----------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field, value",
    [("defect_fraction", 1.5), ("flaw_types", ("pore", "bubble")), ("part", "gearbox"), ("bit_depth", 12),
     ("flaw_size", (3.0, 100.0)), ("size", (8, 8)), ("difficulty", -0.1), ("material", "wood"),
     ("max_flaws", 0)],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        replace(TINY, **{field: value})


def test_config_round_trip_and_unknown_keys():
    assert SynthConfig.from_dict(TINY.to_dict()) == TINY
    assert SynthConfig(size=128).size == (128, 128)
    with pytest.raises(ConfigError, match="n_imgs"):
        SynthConfig.from_dict({"n_imgs": 3})


# -------------------------------------------------------------------------------------------- superimpose


def _real_like(h: int = 96, w: int = 128, dtype: type = np.uint16) -> np.ndarray:
    """A defect-free 'radiograph': bright background, a darker part with a smooth thickness, mild noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    thickness = np.where((xx > 16) & (xx < w - 16), 1.2 + 0.6 * np.sin(yy / h * np.pi), 0.0)
    dose = np.exp(-ndimage.gaussian_filter(thickness, 2)) * (1 + rng.normal(0, 0.005, (h, w)))
    top = np.iinfo(dtype).max
    return np.clip(0.02 * top + 0.9 * top * dose, 0, top).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_superimpose_changes_only_near_the_mask(dtype):
    img = _real_like(dtype=dtype)
    cfg = replace(TINY, flaw_types=("pore",), difficulty=0.2)
    out, mask, boxes, types = superimpose_flaws(img, np.random.default_rng(3), cfg)
    assert out.dtype == img.dtype and out.shape == img.shape
    assert mask.any() and boxes and types == ("pore",)
    near = ndimage.binary_dilation(mask, iterations=5)
    np.testing.assert_array_equal(out[~near], img[~near])
    assert out[mask].astype(float).mean() > img[mask].astype(float).mean()  # voids are brighter
    # Flaws sit on the part (attenuated pixels), not on the bright background.
    part = ndimage.binary_erosion((np.mgrid[0:96, 0:128][1] > 16) & (np.mgrid[0:96, 0:128][1] < 112), None, 1)
    assert (mask <= part).all()
    again = superimpose_flaws(img, np.random.default_rng(3), cfg)
    np.testing.assert_array_equal(again[0], out)


def test_superimpose_inclusions_darken():
    img = _real_like()
    cfg = replace(TINY, flaw_types=("inclusion",))
    out, mask, _, types = superimpose_flaws(img, np.random.default_rng(1), cfg)
    assert types == ("inclusion",)
    assert out[mask].astype(float).mean() < img[mask].astype(float).mean()


def test_superimpose_rejects_colour_and_tiny_images():
    with pytest.raises(ConfigError, match="grey"):
        superimpose_flaws(np.zeros((64, 64, 3), np.uint8), np.random.default_rng(0), TINY)
    with pytest.raises(ConfigError, match="too small"):
        superimpose_flaws(np.zeros((10, 10), np.uint8), np.random.default_rng(0), TINY)


def test_superimpose_dataset(tmp_path):
    src = tmp_path / "free"
    write_image(src / "a.png", _real_like(dtype=np.uint8), bit_depth=8)
    write_image(src / "b.png", _real_like(dtype=np.uint16)[::-1], bit_depth=16)
    out = superimpose_dataset(src, tmp_path / "out", replace(TINY, defect_fraction=0.5), n_images=4)
    rows = _manifest(out)
    assert [r["group"] for r in rows] == ["a", "b", "a", "b"]
    assert {r["defective"] for r in rows} == {"0", "1"}
    for i, row in enumerate(rows):
        raw = read_raw(out / row["path"])
        assert raw.pixels.dtype == (np.uint8 if i % 2 == 0 else np.uint16)
        if row["defective"] == "0":  # defect-free outputs are the source, unchanged
            np.testing.assert_array_equal(raw.pixels, read_raw(src / f"{row['group']}.png").pixels)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        superimpose_dataset(tmp_path / "empty", tmp_path / "x", TINY)


@pytest.mark.real_data
def test_superimpose_on_gdxray(shared_data, tmp_path):
    series = shared_data / "gdxray-castings" / "C0015"
    if not series.is_dir():
        pytest.skip(f"{series} not found")
    img = read_raw(series / "C0015_0001.png").pixels
    out, mask, boxes, _ = superimpose_flaws(img, np.random.default_rng(0), TINY)
    assert out.dtype == np.uint8 and mask.any() and boxes
    near = ndimage.binary_dilation(mask, iterations=5)
    np.testing.assert_array_equal(out[~near], img[~near])


# ----------------------------------------------------------------------------------------------------- CLI


def test_cli_generate_is_the_default(tmp_path):
    from typer.testing import CliRunner

    from flawscope.cli.main import app

    runner = CliRunner()
    args = ["synth", str(tmp_path / "d"), "-n", "3", "--size", "48", "--flaw-size", "3,6", "--seed", "2",
            "--part", "plate"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 images" in result.output
    assert len(_manifest(tmp_path / "d")) == 3
    import yaml

    cfg = yaml.safe_load((tmp_path / "d" / "synth_config.yaml").read_text())["config"]
    assert cfg["size"] == [48, 48] and cfg["seed"] == 2 and cfg["part"] == "plate"
    # Same folder again: a clear error, not a traceback.
    result = runner.invoke(app, ["synth", "generate", str(tmp_path / "d"), "-n", "3"])
    assert isinstance(result.exception, FlawscopeError) and "--overwrite" in str(result.exception)
    # --config reuses a previous run's settings; options override them.
    previous = tmp_path / "d" / "synth_config.yaml"
    result = runner.invoke(app, ["synth", str(tmp_path / "e"), "--config", str(previous), "-n", "2"])
    assert result.exit_code == 0, result.output
    cfg_e = yaml.safe_load((tmp_path / "e" / "synth_config.yaml").read_text())["config"]
    assert cfg_e["n_images"] == 2 and cfg_e["size"] == [48, 48] and cfg_e["part"] == "plate"


def test_cli_superimpose(tmp_path):
    from typer.testing import CliRunner

    from flawscope.cli.main import app

    write_image(tmp_path / "src" / "a.png", _real_like(dtype=np.uint8), bit_depth=8)
    result = CliRunner().invoke(app, ["synth", "superimpose", str(tmp_path / "src"), str(tmp_path / "out"),
                                      "--defect-fraction", "1", "--flaw-size", "3,8"])
    assert result.exit_code == 0, result.output
    rows = _manifest(tmp_path / "out")
    assert len(rows) == 1 and rows[0]["defective"] == "1"
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "x"), "--size", "abc"])
    assert isinstance(result.exception, ConfigError) and "--size" in str(result.exception)
