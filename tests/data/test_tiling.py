"""Tile geometry: full coverage, flush borders, clear errors."""

import numpy as np
import pytest
import torch

from flawscope.data.tiling import crop_pad, pad_to_min, tile_grid
from flawscope.errors import ConfigError, FlawscopeError


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"),
    [(37, 53, 16, 0), (37, 53, 16, 5), (16, 16, 16, 0), (101, 17, (32, 7), (8, 2)), (33, 65, 32, 31)],
)
def test_tiles_cover_every_pixel_and_stay_inside(height, width, tile, overlap):
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    oy, ox = (overlap, overlap) if isinstance(overlap, int) else overlap
    corners = tile_grid(height, width, tile, overlap)
    covered = np.zeros((height, width), dtype=int)
    for top, left in corners:
        assert 0 <= top <= height - th and 0 <= left <= width - tw
        covered[top : top + th, left : left + tw] += 1
    assert covered.min() >= 1
    tops = sorted({t for t, _ in corners})
    lefts = sorted({x for _, x in corners})
    assert tops[-1] == height - th and lefts[-1] == width - tw  # last tile flush with the border
    # Regular steps of tile - overlap, except the flush last one (which may overlap more).
    assert all(b - a == th - oy for a, b in zip(tops[:-2], tops[1:-1], strict=True))
    assert all(0 < b - a <= tw - ox for a, b in zip(lefts[:-1], lefts[1:], strict=True))
    assert len(corners) == len(set(corners))


def test_small_image_error_names_sizes_and_way_out():
    with pytest.raises(FlawscopeError, match=r"image is 10×40 but the tile is 16×16.*pad"):
        tile_grid(10, 40, 16)


def test_overlap_must_be_smaller_than_tile():
    with pytest.raises(ConfigError, match="overlap"):
        tile_grid(64, 64, 16, 16)


def test_pad_to_min_numpy_and_torch():
    a = np.ones((1, 10, 40), dtype=np.float32)
    padded = pad_to_min(a, 16)
    assert padded.shape == (1, 16, 40)
    assert padded[0, :10].min() == 1 and padded[0, 10:].max() == 0
    assert pad_to_min(a, 8) is a
    t = pad_to_min(torch.ones(2, 3, 5, 7), (6, 9), value=-1.0)
    assert t.shape == (2, 3, 6, 9) and t[0, 0, 5, 8] == -1 and t[0, 0, 4, 6] == 1
    assert tile_grid(*padded.shape[-2:], 16) == [(0, 0), (0, 16), (0, 24)]


def test_crop_pad_inside_and_across_border():
    a = np.arange(20).reshape(4, 5)
    assert np.array_equal(crop_pad(a, (1, 2, 2, 2)), [[7, 8], [12, 13]])
    out = crop_pad(a, (3, 4, 2, 3), value=-1)
    assert out.tolist() == [[19, -1, -1], [-1, -1, -1]]
    assert crop_pad(a, None) is a
