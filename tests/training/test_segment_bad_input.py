"""`train(task="segment")` refuses bad segmentation data before training, naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flawscope.errors import FlawscopeError
from flawscope.training.config import TrainConfig
from flawscope.training.run import train
from helpers.datasets import make_image_mask_dataset, make_manifest_dataset, save


def _refused(root: Path, out: Path, **kw) -> str:
    """Train a segmenter on `root`; it must raise a FlawscopeError before the run folder exists."""
    cfg = TrainConfig(**{
        **dict(data=str(root), task="segment", model="unet_small", input_size=32, epochs=1, batch_size=4,
               patience=0, val_fraction=0.25, test_fraction=0.25, accelerator="cpu", devices=1,
               out=str(out), name="x"),
        **kw,
    })
    with pytest.raises(FlawscopeError) as err:
        train(cfg, progress=False)
    assert not (out / "x").exists(), "refused only after the run had started"
    return str(err.value)


def test_mask_of_another_size(tmp_path: Path) -> None:
    root = make_image_mask_dataset(tmp_path / "d", n=8, defective=4)
    save(root / "masks" / "img_005_mask.png", np.zeros((16, 32), bool))
    msg = _refused(root, tmp_path / "runs")
    assert "img_005_mask.png is 16×32" in msg and "img_005.png is 32×32" in msg
    assert "re-export the mask at 32×32" in msg


@pytest.mark.parametrize("fmt", ["image_mask", "manifest"])
def test_mask_that_is_not_binary(tmp_path: Path, fmt: str) -> None:
    if fmt == "image_mask":
        root = make_image_mask_dataset(tmp_path / "d", n=8, defective=4)
        bad = root / "masks" / "img_006_mask.png"
    else:  # defective flags come from the labels: the mask is first decoded by the split check
        root = make_manifest_dataset(tmp_path / "d", n=16, defective=8, splits=("",))
        bad = root / "masks" / "im_3.png"
    mask = np.zeros((32, 32), np.uint8)
    mask[4:9, 4:9] = 7  # a class index, not 1 or 255
    save(bad, mask)
    msg = _refused(root, tmp_path / "runs")
    assert f"mask {bad} has values {{0, 7}}" in msg and "save defect pixels as 255 (or 1)" in msg


def test_all_masks_empty(tmp_path: Path) -> None:
    root = make_image_mask_dataset(tmp_path / "d", n=8, defective=0)
    msg = _refused(root, tmp_path / "runs")
    assert f"dataset {root}" in msg and "masks are empty" in msg
    assert "--task classify" in msg and "check the mask files" in msg


def test_train_masks_empty_although_labelled_defective(tmp_path: Path) -> None:
    root = make_manifest_dataset(tmp_path / "d", n=16, defective=8, splits=("",))
    for mask in (root / "masks").iterdir():
        save(mask, np.zeros((32, 32), bool))
    msg = _refused(root, tmp_path / "runs")
    assert f"the 4 masks of the train split of dataset {root / 'manifest.csv'} are all empty" in msg
    assert "--task classify" in msg and "check the mask files" in msg


def test_no_sample_has_a_mask(tmp_path: Path) -> None:
    root = make_image_mask_dataset(tmp_path / "d", n=8, unmasked=8)
    (root / "masks").mkdir()
    msg = _refused(root, tmp_path / "runs", format="image_mask")
    assert f"dataset {root} (image_mask format, 8 samples) has no sample with a mask" in msg
    assert "--task classify" in msg


def test_image_smaller_than_the_patch(tmp_path: Path) -> None:
    root = make_image_mask_dataset(tmp_path / "d", n=8, defective=4)
    msg = _refused(root, tmp_path / "runs", input_size=48, resize=False)
    assert "img_000.png is 32×32, smaller than the 48×48 patches" in msg
    assert "--input-size 32x32 or smaller" in msg and "--resize" in msg

