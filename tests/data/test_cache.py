"""The decode cache decodes each file once, follows file changes, respects its budget."""

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from flawscope.data import cache as cache_mod
from flawscope.data.cache import DecodeCache
from flawscope.data.config import IntensityConfig
from flawscope.data.sample import RleMask
from flawscope.errors import ImageReadError


def _write(path, h=20, w=30, value=None, fmt=None):
    pixels = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    if value is not None:
        pixels[:] = value
    Image.fromarray(pixels).save(path, format=fmt)
    return path


@pytest.fixture
def decodes(monkeypatch):
    """Counts the real decoder's calls."""
    calls = []
    real_image, real_mask = cache_mod._decode_image, cache_mod._decode_mask

    def image(*args):
        calls.append(("image", args[0]))
        return real_image(*args)

    def mask(*args):
        calls.append(("mask", args[0]))
        return real_mask(*args)

    monkeypatch.setattr(cache_mod, "_decode_image", image)
    monkeypatch.setattr(cache_mod, "_decode_mask", mask)
    return calls


def test_image_is_decoded_once(tmp_path, decodes):
    path = _write(tmp_path / "a.png")
    cache = DecodeCache()
    first, second = cache.get_image(path), cache.get_image(str(path))
    assert len(decodes) == 1
    assert first is second and first.shape == (1, 20, 30) and first.dtype == np.float32
    assert first[0, 0, 1] == pytest.approx(1 / 255)
    assert not first.flags.writeable  # shared by every patch: nobody may write into it
    assert (cache.stats.hits, cache.stats.misses, cache.stats.items) == (1, 1, 1)
    assert cache.stats.bytes == first.nbytes and cache.stats.decode_seconds > 0


def test_key_includes_intensity_channels_and_file_version(tmp_path, decodes):
    path = _write(tmp_path / "a.png")
    cache = DecodeCache()
    cache.get_image(path)
    cache.get_image(path, IntensityConfig("minmax"))
    rgb = cache.get_image(path, in_chans=3)
    assert rgb.shape == (3, 20, 30) and len(decodes) == 3
    _write(path, value=7)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.get_image(path).max() == pytest.approx(7 / 255)
    assert len(decodes) == 4


def test_lru_keeps_within_budget(tmp_path, decodes):
    a, b = _write(tmp_path / "a.png"), _write(tmp_path / "b.png")
    one = 20 * 30 * 4
    cache = DecodeCache(max_bytes=one)
    cache.get_image(a)
    cache.get_image(b)  # evicts a
    assert len(cache) == 1 and cache.stats.bytes == one
    cache.get_image(b)
    cache.get_image(a)
    assert [c[1] for c in decodes] == [a, b, a]
    tiny = DecodeCache(max_bytes=10)  # too small to keep anything, still serves
    assert tiny.get_image(a).shape == (1, 20, 30) and len(tiny) == 0


def test_disk_store_for_slow_formats(tmp_path, decodes):
    jpg = _write(tmp_path / "a.jpg", fmt="JPEG")
    store = tmp_path / "npy"
    first = DecodeCache(disk_dir=store).get_image(jpg)
    assert len(list(store.glob("*.npy"))) == 1
    other = DecodeCache(disk_dir=store)  # a later run or another worker
    again = other.get_image(jpg)
    assert len(decodes) == 1 and other.stats.disk_hits == 1
    assert np.array_equal(first, again)
    png = _write(tmp_path / "b.png")
    DecodeCache(disk_dir=store).get_image(png)  # PNG decodes fast: not stored
    assert len(list(store.glob("*.npy"))) == 1


def test_masks_are_decoded_once(tmp_path, decodes):
    mask_path = tmp_path / "m.png"
    m = np.zeros((20, 30), np.uint8)
    m[3, 4] = 255
    Image.fromarray(m).save(mask_path)
    rle = RleMask("5 3", 20, 30)
    cache = DecodeCache()
    for _ in range(3):
        got = cache.get_mask(mask_path, (20, 30), tmp_path / "img.png")
        from_rle = cache.get_mask(rle, (20, 30))
    assert got.dtype == bool and got.sum() == 1 and got[3, 4]
    assert from_rle.sum() == 3
    assert len(decodes) == 2


def test_pickled_cache_starts_empty(tmp_path):
    cache = DecodeCache(max_bytes=1234, disk_dir=tmp_path)
    cache.get_image(_write(tmp_path / "a.png"))
    clone = pickle.loads(pickle.dumps(cache))
    assert len(clone) == 0 and clone.max_bytes == 1234 and clone.disk_dir == tmp_path
    assert clone.get_image(tmp_path / "a.png").shape == (1, 20, 30)


def test_missing_file_error_names_it(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png"):
        DecodeCache().get_image(tmp_path / "nope.png")
