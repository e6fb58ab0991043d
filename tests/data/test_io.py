"""Reading, normalising and writing images and masks in every supported format."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

from flawscope.data import io
from flawscope.data.config import IntensityConfig
from flawscope.data.rle import rle_encode
from flawscope.data.sample import RleMask
from flawscope.errors import ConfigError
from helpers.images import (
    random_radiograph,
    write_bmp,
    write_dicom,
    write_jpeg,
    write_png,
    write_png16,
    write_tiff16,
)

# ------------------------------------------------------------------------------------------------ round trips


def test_png8_round_trip(tmp_path):
    a = random_radiograph(32, 48, seed=0, dtype=np.uint8)
    raw = io.read_raw(write_png(tmp_path / "a.png", a))
    assert raw.pixels.dtype == np.uint8 and raw.bit_depth == 8
    np.testing.assert_array_equal(raw.pixels, a)
    assert raw.path == tmp_path / "a.png"


def test_png16_keeps_16_bits(tmp_path):
    a = random_radiograph(32, 48, seed=0, dtype=np.uint16)
    assert a.max() > 255
    raw = io.read_raw(write_png16(tmp_path / "a.png", a))
    assert raw.pixels.dtype == np.uint16 and raw.bit_depth == 16
    np.testing.assert_array_equal(raw.pixels, a)
    assert raw.pixels.flags.writeable


def test_png16_rgb_keeps_16_bits(tmp_path):
    a = np.random.default_rng(0).integers(0, 65536, size=(8, 9, 3)).astype(np.uint16)
    path = io.write_image(tmp_path / "c.png", a, bit_depth=16)
    raw = io.read_raw(path)
    assert raw.pixels.dtype == np.uint16 and raw.pixels.shape == (8, 9, 3)
    np.testing.assert_array_equal(raw.pixels, a)  # channel order kept (OpenCV decodes BGR)
    assert io.image_info(path) == io.ImageInfo(8, 9, 3, 16, "uint16", "PNG")


def test_tiff16_round_trip(tmp_path):
    a = random_radiograph(32, 48, seed=1, dtype=np.uint16)
    raw = io.read_raw(write_tiff16(tmp_path / "a.tif", a))
    assert raw.pixels.dtype == np.uint16 and raw.bit_depth == 16
    np.testing.assert_array_equal(raw.pixels, a)


def test_tiff_float32_and_rgb(tmp_path):
    f = random_radiograph(16, 20, seed=2, dtype=np.float32)
    raw = io.read_raw(write_tiff16(tmp_path / "f.tiff", f))
    assert raw.pixels.dtype == np.float32 and raw.bit_depth == 32
    np.testing.assert_array_equal(raw.pixels, f)
    rgb = np.stack([f, f * 0.5, f * 0.25], axis=-1)
    rgb16 = np.round(rgb * 65535).astype(np.uint16)
    raw = io.read_raw(write_tiff16(tmp_path / "rgb.tif", rgb16))
    assert raw.pixels.shape == (16, 20, 3)
    np.testing.assert_array_equal(raw.pixels, rgb16)


def test_tiff_multipage_reads_first_page_with_warning(tmp_path):
    a = random_radiograph(16, 20, seed=3)
    path = write_tiff16(tmp_path / "stack.tif", a, pages=3)
    with pytest.warns(UserWarning, match="3 pages"):
        raw = io.read_raw(path)
    np.testing.assert_array_equal(raw.pixels, a)  # pages 2-3 are flipped copies; the first is unflipped


def test_tiff_needing_imagecodecs_falls_back_to_pil(tmp_path):
    from PIL import Image

    a = random_radiograph(32, 48, seed=4, dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "j.tif", compression="jpeg")  # tifffile alone needs imagecodecs
    raw = io.read_raw(tmp_path / "j.tif")
    assert raw.pixels.shape == (32, 48) and raw.pixels.dtype == np.uint8
    assert np.abs(raw.pixels.astype(int) - a).mean() < 12  # lossy, but the same image


def test_jpeg_and_bmp(tmp_path):
    a = random_radiograph(32, 48, seed=5, dtype=np.uint8)
    raw = io.read_raw(write_jpeg(tmp_path / "a.JPG", a))  # upper-case suffix
    assert raw.pixels.shape == (32, 48) and raw.bit_depth == 8
    assert np.abs(raw.pixels.astype(int) - a).mean() < 3
    rgb = np.stack([a, a // 2, 255 - a], axis=-1)
    raw = io.read_raw(write_bmp(tmp_path / "c.bmp", rgb))
    np.testing.assert_array_equal(raw.pixels, rgb)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    a = np.zeros((32, 48), np.uint8)
    a[:8, :8] = 255  # a bright top-left corner
    path = write_jpeg(tmp_path / "rot.jpg", a, orientation=6)  # stored landscape, shown rotated 90° clockwise
    raw = io.read_raw(path)
    assert raw.pixels.shape == (48, 32)
    assert raw.pixels[:8, -8:].mean() > 200 and raw.pixels[:8, :8].mean() < 50  # corner now at the top right
    info = io.image_info(path)
    assert (info.height, info.width) == (48, 32)


def test_dicom_12_bit(tmp_path):
    a = random_radiograph(24, 32, seed=6) >> 4  # 12-bit values
    assert a.max() > 255
    path = write_dicom(tmp_path / "a.dcm", a, bits_stored=12)
    raw = io.read_raw(path)
    assert raw.pixels.dtype == np.uint16 and raw.bit_depth == 12
    np.testing.assert_array_equal(raw.pixels, a)
    assert io.image_info(path) == io.ImageInfo(24, 32, 1, 12, "uint16", "DICOM")
    # dtype scaling uses the stored 12 bits, not the 16-bit container
    x = io.load_image(path)
    np.testing.assert_allclose(x[0], a / 4095, rtol=1e-6)


def test_dicom_monochrome1_is_inverted(tmp_path):
    a = random_radiograph(24, 32, seed=7) >> 4
    raw = io.read_raw(write_dicom(tmp_path / "m1.dcm", a, bits_stored=12, monochrome1=True))
    np.testing.assert_array_equal(raw.pixels, 4095 - a)


def test_dicom_rescale_slope_intercept(tmp_path):
    a = random_radiograph(24, 32, seed=8) >> 4
    path = write_dicom(tmp_path / "r.dcm", a, bits_stored=12, slope=2.0, intercept=10.0)
    raw = io.read_raw(path)
    assert raw.pixels.dtype == np.float32 and raw.bit_depth == 32
    np.testing.assert_allclose(raw.pixels, a * 2.0 + 10.0)
    assert io.image_info(path).dtype == "float32"
    # MONOCHROME1 after rescale flips within the rescaled range [10, 4095*2 + 10]
    raw = io.read_raw(write_dicom(tmp_path / "r1.dcm", a, 12, monochrome1=True, slope=2.0, intercept=10.0))
    np.testing.assert_allclose(raw.pixels, (10 + 8200) - (a * 2.0 + 10.0))


def test_dicom_without_suffix_is_recognised(tmp_path):
    a = random_radiograph(8, 8, seed=9) >> 4
    write_dicom(tmp_path / "IMG0001", a)
    np.testing.assert_array_equal(io.read_raw(tmp_path / "IMG0001").pixels, a)


def test_image_info_matches_read_raw(tmp_path):
    a8 = random_radiograph(20, 30, seed=10, dtype=np.uint8)
    a16 = random_radiograph(20, 30, seed=10)
    files = [
        write_png(tmp_path / "a.png", a8),
        write_png16(tmp_path / "b.png", a16),
        write_tiff16(tmp_path / "c.tif", a16),
        write_jpeg(tmp_path / "d.jpg", np.stack([a8] * 3, -1)),
        write_bmp(tmp_path / "e.bmp", a8),
        write_png(tmp_path / "f.png", a8 > 128),  # 1-bit
    ]
    for path in files:
        info, raw = io.image_info(path), io.read_raw(path)
        channels = 1 if raw.pixels.ndim == 2 else raw.pixels.shape[2]
        assert (info.height, info.width, info.channels) == (*raw.pixels.shape[:2], channels), path
        assert (info.bit_depth, info.dtype) == (raw.bit_depth, raw.pixels.dtype.name), path
    assert io.image_info(files[3]).format == "JPEG"


def test_palette_and_alpha_images(tmp_path):
    from PIL import Image

    a = random_radiograph(16, 16, seed=11, dtype=np.uint8)
    Image.fromarray(a).convert("P").save(tmp_path / "p.png")  # grayscale palette -> one channel
    Image.fromarray(np.stack([a, a, a, np.full_like(a, 7)], -1)).save(tmp_path / "rgba.png")
    p = io.read_raw(tmp_path / "p.png")
    assert p.pixels.ndim == 2 and io.image_info(tmp_path / "p.png").channels == 1
    rgba = io.read_raw(tmp_path / "rgba.png")
    assert rgba.pixels.shape == (16, 16, 3)  # alpha dropped
    np.testing.assert_array_equal(rgba.pixels[..., 0], a)


# ------------------------------------------------------------------------------------------- intensity modes


def test_normalize_dtype_mode():
    x = np.array([[0, 1000, 65535]], np.uint16)
    out = io.normalize_intensity(x, IntensityConfig("dtype"), 16)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 1000 / 65535, 1]], rtol=1e-6)
    # 12-bit data in a 16-bit container; values above 4095 (junk bits) clip to 1
    out = io.normalize_intensity(np.array([0, 4095, 5000], np.uint16), IntensityConfig(), 12)
    np.testing.assert_allclose(out, [0, 1, 1])


def test_normalize_dtype_mode_on_floats():
    inside = np.array([0.2, 0.5], np.float32)
    np.testing.assert_allclose(io.normalize_intensity(inside, IntensityConfig(), 32), inside)
    outside = np.array([-5.0, 0.0, 15.0], np.float32)
    np.testing.assert_allclose(io.normalize_intensity(outside, IntensityConfig(), 32), [0, 0.25, 1])


def test_normalize_minmax_and_flat_guard():
    x = np.array([[100, 200], [300, 500]], np.uint16)
    out = io.normalize_intensity(x, IntensityConfig("minmax"), 16)
    np.testing.assert_allclose(out, [[0, 0.25], [0.5, 1]])
    flat = np.full((4, 4), 255, np.uint8)
    out = io.normalize_intensity(flat, IntensityConfig("minmax"), 8)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 1.0)  # a flat white image stays white (dtype fallback), no 0/0


def test_normalize_window():
    x = np.array([0, 1000, 2000, 3000, 60000], np.uint16)
    out = io.normalize_intensity(x, IntensityConfig("window", 1000, 3000), 16)
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])


def test_normalize_percentile_ignores_outliers():
    x = np.concatenate([np.linspace(1000, 2000, 1000), [65535.0]]).astype(np.uint16)  # one hot pixel
    out = io.normalize_intensity(x, IntensityConfig("percentile", 0, 99), 16)
    assert out[-1] == 1.0 and out[0] == 0.0
    assert 0.45 < out[500] < 0.55  # the hot pixel does not squash the real range (minmax gives ~0.02)
    assert io.normalize_intensity(x, IntensityConfig("minmax"), 16)[500] < 0.05


def test_normalize_nan_becomes_zero():
    x = np.array([np.nan, 0.5, 2.0], np.float32)
    out = io.normalize_intensity(x, IntensityConfig("minmax"), 32)
    np.testing.assert_allclose(out, [0, 0, 1])


def test_normalize_does_not_modify_input():
    x = np.array([0.1, 0.5], np.float32)
    io.normalize_intensity(x, IntensityConfig(), 32)
    np.testing.assert_array_equal(x, np.array([0.1, 0.5], np.float32))


# ------------------------------------------------------------------------------------------------ load_image


def test_load_image_gray_and_rgb(tmp_path):
    a = random_radiograph(32, 48, seed=12)
    x = io.load_image(write_png16(tmp_path / "a.png", a))
    assert x.shape == (1, 32, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], a / 65535, rtol=1e-6)
    x3 = io.load_image(tmp_path / "a.png", in_chans=3)
    assert x3.shape == (3, 32, 48)
    np.testing.assert_array_equal(x3[0], x3[2])

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    write_png(tmp_path / "red.png", rgb)
    gray = io.load_image(tmp_path / "red.png")
    np.testing.assert_allclose(gray, 0.299, rtol=1e-5)  # BT.601 luma of red
    col = io.load_image(tmp_path / "red.png", in_chans=3)
    np.testing.assert_allclose(col[:, 0, 0], [1, 0, 0])


def test_load_image_minmax_stretches_luma(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (100, 100, 100)
    rgb[2:] = (120, 120, 120)
    x = io.load_image(write_png(tmp_path / "g.png", rgb), IntensityConfig("minmax"))
    assert x.min() == 0.0 and x.max() == 1.0


def test_load_image_rejects_bad_in_chans(tmp_path):
    path = write_png(tmp_path / "a.png", random_radiograph(8, 8, seed=0, dtype=np.uint8))
    with pytest.raises(ConfigError, match="in_chans"):
        io.load_image(path, in_chans=2)


# --------------------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("on", [1, 255, True])
def test_load_mask_accepts_binary_conventions(tmp_path, on):
    m = np.zeros((16, 20), bool)
    m[3:7, 5:9] = True
    arr = m if on is True else m.astype(np.uint8) * np.uint8(on)
    mask = io.load_mask(write_png(tmp_path / "m.png", arr), expected_shape=(16, 20))
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, m)


def test_load_mask_tiff_bmp_and_palette(tmp_path):
    from PIL import Image

    m = np.zeros((16, 20), bool)
    m[2:5, 1:3] = True
    np.testing.assert_array_equal(io.load_mask(write_tiff16(tmp_path / "m.tif", m.astype(np.uint16))), m)
    np.testing.assert_array_equal(io.load_mask(write_bmp(tmp_path / "m.bmp", m.astype(np.uint8) * 255)), m)
    p = Image.new("P", (20, 16))
    p.putdata(m.astype(np.uint8).ravel().tolist())  # indices 0/1
    p.putpalette([0, 0, 0, 255, 0, 0])  # index 1 shown red: the index, not the colour, is the class
    p.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(io.load_mask(tmp_path / "pal.png"), m)


def test_load_mask_rle_and_union():
    m1 = np.zeros((8, 10), bool)
    m1[1:3, 2] = True
    m2 = np.zeros((8, 10), bool)
    m2[5, 5:8] = True
    r1, r2 = RleMask(rle_encode(m1), 8, 10), RleMask(rle_encode(m2), 8, 10)
    np.testing.assert_array_equal(io.load_mask(r1), m1)
    np.testing.assert_array_equal(io.load_mask((r1, r2), expected_shape=(8, 10)), m1 | m2)
    assert not io.load_mask((), expected_shape=(3, 4)).any()


def test_write_mask_and_image_round_trip(tmp_path):
    m = np.zeros((12, 14), bool)
    m[4:6, 4:9] = True
    path = io.write_mask(tmp_path / "sub" / "m.png", m)  # parent folder created
    raw = io.read_raw(path)
    assert set(np.unique(raw.pixels).tolist()) == {0, 255}
    np.testing.assert_array_equal(io.load_mask(path), m)

    f = random_radiograph(12, 14, seed=13, dtype=np.float32)
    for suffix, bits, dtype in ((".png", 16, np.uint16), (".tif", 12, np.uint16), (".png", 8, np.uint8)):
        p = io.write_image(tmp_path / f"f{bits}{suffix}", f, bit_depth=bits)
        raw = io.read_raw(p)
        assert raw.pixels.dtype == dtype
        np.testing.assert_array_equal(raw.pixels, np.round(f * (2**bits - 1)).astype(dtype))

    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        io.write_image(tmp_path / "bad.png", f * 3)
    with pytest.raises(ConfigError, match="do not fit 8 bits"):
        io.write_image(tmp_path / "bad.png", np.array([[0, 300]], np.uint16), bit_depth=8)
    with pytest.raises(ConfigError, match="lossless"):
        io.write_mask(tmp_path / "m.jpg", m)


def test_file_digest(tmp_path):
    a = write_png(tmp_path / "a.png", random_radiograph(8, 8, seed=0, dtype=np.uint8))
    b = tmp_path / "b.png"
    b.write_bytes(a.read_bytes())
    c = write_png(tmp_path / "c.png", random_radiograph(8, 8, seed=1, dtype=np.uint8))
    assert io.file_digest(a) == io.file_digest(b) == hashlib.sha1(a.read_bytes()).hexdigest()
    assert io.file_digest(a) != io.file_digest(c)


def test_pil_limit_is_ours_and_no_warning_leaks(tmp_path, monkeypatch):
    from PIL import Image

    path = write_png(tmp_path / "a.png", random_radiograph(64, 64, seed=0, dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL would warn (and refuse above 200 pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert io.read_raw(path).pixels.shape == (64, 64)
        assert io.image_info(path).height == 64
    assert Image.MAX_IMAGE_PIXELS == 100  # PIL's own setting restored


def test_supported_suffixes():
    assert {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".dcm"} <= set(io.SUPPORTED_SUFFIXES)
    assert all(s == s.lower() and s.startswith(".") for s in io.SUPPORTED_SUFFIXES)


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_real_datasets(shared_data):
    png = shared_data / "gdxray-castings" / "C0001" / "C0001_0001.png"
    raw = io.read_raw(png)
    assert raw.pixels.dtype == np.uint8 and raw.pixels.ndim == 2 and raw.pixels.std() > 1
    assert io.image_info(png) == io.ImageInfo(572, 768, 1, 8, "uint8", "PNG")

    weld = shared_data / "gdxray-welds" / "W0001" / "W0001_0001.png"
    wmask = shared_data / "gdxray-welds" / "W0002" / "W0002_0001.png"
    h, w = io.image_info(weld).height, io.image_info(weld).width
    mask = io.load_mask(wmask, expected_shape=(h, w), image_path=weld)  # 1-bit PNG
    assert mask.dtype == np.bool_ and 0 < mask.sum() < mask.size

    jpgs = sorted((shared_data / "magnetic-tile" / "MT_Blowhole" / "Imgs").glob("*.jpg"))
    assert jpgs, "magnetic-tile MT_Blowhole has no images"
    tile = io.load_image(jpgs[0])
    tmask = io.load_mask(jpgs[0].with_suffix(".png"), expected_shape=tile.shape[1:], image_path=jpgs[0])
    assert tile.shape[0] == 1 and tmask.any()

    neu = shared_data / "neu-det" / "train" / "images" / "crazing" / "crazing_1.jpg"
    x = io.load_image(neu)
    assert x.shape == (1, 200, 200) and 0 <= x.min() < x.max() <= 1
