"""The bad-input corpus: every broken file gives one clear FlawscopeError that names the file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from flawscope.data import io
from flawscope.data.sample import RleMask
from flawscope.errors import DatasetError, FlawscopeError, ImageReadError
from helpers.images import (
    random_radiograph,
    write_dicom,
    write_png,
    write_text_as_png,
    write_truncated_jpeg,
    write_truncated_png,
    write_zero_byte,
)


def _read_error(path, match: str) -> ImageReadError:
    """read_raw, load_image and (where the header is broken too) image_info all fail the same way."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning may leak either
        with pytest.raises(ImageReadError, match=match) as info:
            io.read_raw(path)
        with pytest.raises(ImageReadError, match=match):
            io.load_image(path)
    err = info.value
    assert str(path) in str(err) and err.path == path
    assert isinstance(err, FlawscopeError) and isinstance(err, ValueError)
    return err


def test_missing_file(tmp_path):
    _read_error(tmp_path / "nope.png", "file not found")
    with pytest.raises(ImageReadError, match="file not found"):
        io.image_info(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="file not found"):
        io.file_digest(tmp_path / "nope.png")


def test_directory(tmp_path):
    (tmp_path / "dir.png").mkdir()
    _read_error(tmp_path / "dir.png", "directory")


def test_zero_byte_png(tmp_path):
    err = _read_error(write_zero_byte(tmp_path / "empty.png"), "empty")
    assert "copy it again" in str(err)
    with pytest.raises(ImageReadError, match="empty"):
        io.image_info(tmp_path / "empty.png")


def test_text_named_png(tmp_path):
    err = _read_error(write_text_as_png(tmp_path / "page.png"), "not a readable PNG")
    assert "looks like text" in str(err) and "<html>" in str(err)
    with pytest.raises(ImageReadError, match="not a readable PNG"):
        io.image_info(tmp_path / "page.png")


def test_truncated_jpeg(tmp_path):
    path = write_truncated_jpeg(tmp_path / "cut.jpg")
    assert io.image_info(path).width == 64  # the header survives; decoding does not
    _read_error(path, "truncated")


def test_truncated_png(tmp_path):
    _read_error(write_truncated_png(tmp_path / "cut.png"), "not a readable PNG")


def test_truncated_tiff(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, random_radiograph(32, 48, seed=0))
    path.write_bytes(path.read_bytes()[:200])
    _read_error(path, "TIFF")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "scan.gif"
    path.write_bytes(b"GIF89a....")
    err = _read_error(path, "unsupported file type '.gif'")
    assert ".png" in str(err)  # lists what is supported


def test_dicom_without_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "header.dcm", None, with_pixels=False, shape=(16, 16))
    _read_error(path, "no pixel data")
    assert io.image_info(path).height == 16  # the header alone is fine


def test_text_named_dcm(tmp_path):
    _read_error(write_text_as_png(tmp_path / "fake.dcm"), "DICOM")


def test_image_over_max_pixels(tmp_path, monkeypatch):
    path = write_png(tmp_path / "a.png", random_radiograph(32, 48, seed=0, dtype=np.uint8))
    monkeypatch.setattr(io, "MAX_PIXELS", 1000)
    err = _read_error(path, "MAX_PIXELS")
    assert "32×48" in str(err) and "tile or crop" in str(err) and "flawscope.data.io.MAX_PIXELS" in str(err)
    assert io.image_info(path).height == 32  # describing it is still fine
    monkeypatch.setattr(io, "MAX_PIXELS", 32 * 48)
    assert io.read_raw(path).pixels.shape == (32, 48)  # the limit is inclusive


def test_big_tiff_described_without_decoding(tmp_path):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, shape=(20000, 20000), dtype=np.uint16)  # header + sparse data: no 800 MB written
    info = io.image_info(path)
    assert info == io.ImageInfo(20000, 20000, 1, 16, "uint16", "TIFF")
    _read_error(path, "400,000,000 pixels is more than MAX_PIXELS")  # refused before decoding


def test_mask_of_wrong_size(tmp_path):
    mask_path = write_png(tmp_path / "m.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(FlawscopeError) as info:
        io.load_mask(mask_path, expected_shape=(32, 48), image_path=tmp_path / "img.png")
    assert str(info.value) == (
        f"mask {mask_path} is 10×12 but image {tmp_path / 'img.png'} is 32×48; masks must match their image"
    )
    with pytest.raises(FlawscopeError, match="masks must match their image"):
        io.load_mask(RleMask("1 3", 10, 12), expected_shape=(12, 10))


def test_mask_with_value_7(tmp_path):
    m = np.zeros((16, 16), np.uint8)
    m[4:8, 4:8] = 7  # a class index, not a binary mask
    path = write_png(tmp_path / "labels.png", m)
    with pytest.raises(DatasetError) as info:
        io.load_mask(path)
    msg = str(info.value)
    assert str(path) in msg and "{0, 7}" in msg and "255" in msg and "one mask per class" in msg


def test_mask_that_is_a_grayscale_image(tmp_path):
    path = write_png(tmp_path / "photo.png", random_radiograph(32, 32, seed=0, dtype=np.uint8))
    with pytest.raises(DatasetError, match="threshold it"):
        io.load_mask(path)


def test_mask_soft_edges_are_thresholded_but_not_too_many(tmp_path):
    m = np.zeros((40, 40), np.uint8)
    m[10:20, 10:20] = 255
    m[9, 10:20] = 100  # anti-aliased border below half scale -> background
    m[20, 10:20] = 200  # ... above half scale -> defect
    mask = io.load_mask(write_png(tmp_path / "soft.png", m))
    assert mask.sum() == 110 and mask[20, 15] and not mask[9, 15]
    m[:30, 25:] = 128  # now 19% of the pixels are in between: not a mask
    with pytest.raises(DatasetError, match="distinct"):
        io.load_mask(write_png(tmp_path / "soft2.png", m))


def test_colour_mask_with_differing_channels(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2:4, 2:4] = (255, 0, 0)
    with pytest.raises(DatasetError, match="colour"):
        io.load_mask(write_png(tmp_path / "red.png", rgb))


def test_bad_mask_references(tmp_path):
    with pytest.raises(DatasetError, match="RleMask"):
        io.load_mask(42)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="differ in size"):
        io.load_mask((RleMask("1 1", 4, 4), RleMask("1 1", 5, 4)))
    with pytest.raises(DatasetError, match="expected_shape"):
        io.load_mask(())
    with pytest.raises(DatasetError, match="past the end"):
        io.load_mask(RleMask("10 50", 4, 4))
    with pytest.raises(ImageReadError, match="file not found"):
        io.load_mask(tmp_path / "missing.png")
