"""`flawscope predict`: classifier CSV with decisions, skipped files, segmenter masks at any image size.

The models are built untrained (weights do not matter to what is written where); the segmenter's output
layer is set so that every pixel is defective, which makes its masks and flaw sizes exactly predictable.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.data.config import PreprocessConfig
from flawscope.deploy.predict import collect_images, predict_files
from flawscope.errors import ConfigError
from flawscope.models.checkpoint import save_model
from flawscope.models.registry import create_model
from helpers.datasets import blob_image, save

runner = CliRunner()
SIZE = 32


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _classifier(tmp_path: Path, resize: bool = True, name: str = "cls", **config: object) -> Path:
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=2, in_chans=1,
                         preprocess=PreprocessConfig(input_size=(SIZE, SIZE), resize=resize))
    model.config = replace(model.config, **config)
    (tmp_path / name).mkdir(exist_ok=True)
    return save_model(model, tmp_path / name / "model.pt")


def _all_defect_segmenter(tmp_path: Path, resize: bool = True) -> Path:
    torch.manual_seed(0)
    model = create_model("unet_small", num_classes=2, in_chans=1,
                         preprocess=PreprocessConfig(input_size=(SIZE, SIZE), resize=resize))
    with torch.no_grad():  # mask logit +10 everywhere: every pixel is a defect
        model.out.weight.zero_()
        model.out.bias.fill_(10.0)
    (tmp_path / "seg").mkdir(exist_ok=True)
    return save_model(model, tmp_path / "seg" / "model.pt")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_predict_folder_lists_corrupt_file_and_leaves_inputs_alone(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for i in range(4):
        save(images / f"part_{i}.png", blob_image(i, i % 2 == 1)[0])
    save(images / "sub" / "part_9.png", blob_image(9, True)[0])
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (images / "notes.txt").write_text("operator notes")
    before = _snapshot(images)
    model = _classifier(tmp_path)
    out = tmp_path / "out"

    result = runner.invoke(app, ["predict", str(model), str(images), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "2 file(s) skipped" in result.output
    skipped = {Path(r["path"]).name: r["reason"] for r in _rows(out / "skipped.csv")}
    assert set(skipped) == {"broken.png", "notes.txt"}
    assert "cannot read image" in skipped["broken.png"]
    rows = _rows(out / "predictions.csv")
    assert sorted(Path(r["path"]).name for r in rows) == ["part_0.png", "part_1.png", "part_2.png",
                                                         "part_3.png", "part_9.png"]
    for r in rows:
        p = float(r["score"])
        assert 0.0 <= p <= 1.0
        assert r["decision"] == ("defect" if p >= 0.5 else "ok")
        assert float(r["prob_ok"]) + float(r["prob_defect"]) == pytest.approx(1.0, abs=1e-5)
    assert _snapshot(images) == before  # nothing written, changed or removed among the inputs


def test_decisions_follow_model_threshold_and_reject_band(tmp_path: Path) -> None:
    images = [save(tmp_path / "in" / f"x{i}.png", blob_image(i, i % 2 == 1)[0]) for i in range(3)]
    everything = predict_files(_classifier(tmp_path, name="t0", threshold=0.0), images, tmp_path / "a")
    assert everything.decisions == {"ok": 0, "defect": 3, "unsure": 0}
    unsure = predict_files(_classifier(tmp_path, name="rb", reject_band=(0.0, 1.0)), images, tmp_path / "b")
    assert unsure.decisions == {"ok": 0, "defect": 0, "unsure": 3}
    assert all(r.abstained for r in unsure.records)
    model = _classifier(tmp_path, name="t1", threshold=1.0)
    result = runner.invoke(app, ["predict", str(model), *map(str, images), "--out", str(tmp_path / "c"),
                                 "--threshold", "0"])
    assert result.exit_code == 0, result.output
    assert {r["decision"] for r in _rows(tmp_path / "c" / "predictions.csv")} == {"defect"}


def test_patch_classifier_scores_tiles_of_a_large_image(tmp_path: Path) -> None:
    image = save(tmp_path / "in" / "wide.png", blob_image(0, True, (SIZE, 3 * SIZE))[0])
    result = predict_files(_classifier(tmp_path, resize=False), [image], tmp_path / "out", overlap=0)
    top, left, h, w = result.records[0].tile
    assert _rows(tmp_path / "out" / "predictions.csv")[0]["tile"] == f"{top} {left} {h} {w}"
    assert top == 0 and left in (0, SIZE, 2 * SIZE) and (h, w) == (SIZE, SIZE)


@pytest.mark.parametrize(("resize", "tile"), [(True, 32), (True, None), (False, None)])
def test_segmenter_writes_masks_of_the_image_size(tmp_path: Path, resize: bool, tile: int | None) -> None:
    big = save(tmp_path / "in" / "weld.png", blob_image(1, True, (48, 80))[0])
    small = save(tmp_path / "in" / "small.png", blob_image(2, False, (20, 24))[0])
    model = _all_defect_segmenter(tmp_path, resize=resize)
    out = tmp_path / "out"
    args = ["predict", str(model), str(big), str(small), "--out", str(out), "--pixel-size-mm", "0.1"]
    if tile:
        args += ["--tile", str(tile), "--overlap", "8"]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    mask = np.asarray(Image.open(out / "masks" / "weld.png"))
    assert mask.shape == (48, 80) and mask.min() == 255  # the whole image, at its own size
    assert np.asarray(Image.open(out / "masks" / "small.png")).shape == (20, 24)
    assert np.asarray(Image.open(out / "overlays" / "weld.png")).shape == (48, 80, 3)
    flaws = {Path(r["path"]).name: r for r in _rows(out / "flaws.csv")}
    weld = flaws["weld.png"]
    assert int(weld["area_px"]) == 48 * 80
    assert (weld["x1"], weld["y1"], weld["x2"], weld["y2"]) == ("0", "0", "80", "48")
    assert float(weld["area_mm2"]) == pytest.approx(38.4)
    assert float(weld["equivalent_diameter_mm"]) == pytest.approx(np.sqrt(4 * 3840 / np.pi) * 0.1, rel=1e-5)
    rows = {Path(r["path"]).name: r for r in _rows(out / "predictions.csv")}
    assert rows["weld.png"]["n_flaws"] == "1" and rows["weld.png"]["largest_flaw_px"] == "3840"


def test_output_inside_input_folder_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "in" / "a.png", blob_image(0, False)[0])
    with pytest.raises(ConfigError, match="inside the input folder"):
        collect_images([tmp_path / "in"], tmp_path / "in" / "predictions")


def test_no_readable_input_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("x")
    with pytest.raises(ConfigError, match="no image files"):
        predict_files(_classifier(tmp_path), [tmp_path / "in"], tmp_path / "out")


@pytest.mark.real_data
def test_segmenter_on_a_real_weld_radiograph(shared_data: Path, tmp_path: Path) -> None:
    weld = shared_data / "gdxray-welds" / "W0001" / "W0001_0001.png"
    if not weld.is_file():
        pytest.skip(f"{weld} not found")
    from flawscope.data.io import image_info

    info = image_info(weld)
    result = predict_files(_all_defect_segmenter(tmp_path, resize=False), [weld], tmp_path / "out",
                           tile=256, overlap=32, batch_size=16)
    assert not result.skipped
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "W0001_0001.png"))
    assert mask.shape == (info.height, info.width) and mask.min() == 255
