"""Kaggle/Severstal run-length encoding."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.data.rle import rle_decode, rle_encode
from flawscope.errors import DatasetError, FlawscopeError


def test_known_severstal_example():
    # Severstal: 256×1600 images, pixels numbered top to bottom then left to right, 1-based.
    mask = rle_decode("1 3 257 2", 256, 1600)
    assert mask.shape == (256, 1600) and mask.dtype == np.bool_
    assert mask.sum() == 5
    assert mask[0:3, 0].all() and mask[0:2, 1].all()  # pixel 257 is row 0 of column 1
    assert not mask[3, 0] and not mask[2, 1]
    assert rle_encode(mask) == "1 3 257 2"


def test_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (7, 5), (32, 48)):
        m = rng.random((h, w)) < 0.3
        np.testing.assert_array_equal(rle_decode(rle_encode(m), h, w), m)


def test_edges_and_empty():
    m = np.zeros((4, 3), bool)
    assert rle_encode(m) == ""
    assert not rle_decode("", 4, 3).any() and not rle_decode("  \n", 4, 3).any()
    m[:] = True
    assert rle_encode(m) == "1 12"
    m = np.zeros((4, 3), bool)
    m[-1, -1] = True  # the very last pixel
    assert rle_encode(m) == "12 1"
    np.testing.assert_array_equal(rle_decode("12 1", 4, 3), m)


def test_unsorted_and_overlapping_runs_are_unioned():
    a = rle_decode("5 2 1 3", 4, 2)
    b = rle_decode("1 3 5 2", 4, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rle_decode("1 4 3 3", 4, 2), rle_decode("1 5", 4, 2))


@pytest.mark.parametrize(
    ("rle", "match"),
    [
        ("1 3 5", "even count"),
        ("1 x", "'x'"),
        ("0 2", "1-based"),
        ("1 0", "lengths must be"),
        ("10 5", "past the end"),
        ("1.5 2", "not an integer"),
    ],
)
def test_malformed_strings_name_the_string(rle, match):
    with pytest.raises(DatasetError, match=match) as info:
        rle_decode(rle, 4, 3)
    assert repr(rle) in str(info.value) or rle.split()[0] in str(info.value)
    assert isinstance(info.value, FlawscopeError)


def test_long_string_is_abbreviated_in_errors():
    rle = " ".join(["1 1"] * 200) + " 999 5"
    with pytest.raises(DatasetError, match="past the end") as info:
        rle_decode(rle, 4, 3)
    assert "…" in str(info.value) and len(str(info.value)) < 300


def test_bad_sizes_and_shapes():
    with pytest.raises(DatasetError, match="positive"):
        rle_decode("1 1", 0, 3)
    with pytest.raises(DatasetError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2), bool))
