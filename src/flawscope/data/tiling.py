"""Tile geometry shared by patch extraction and sliding-window inference."""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from flawscope.errors import ConfigError

ArrayT = TypeVar("ArrayT")


def size_pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """(height, width) from an int or a pair of non-negative ints; `name` goes into the error."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 0 for v in pair):
        raise ConfigError(f"{name} must be a non-negative int or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def _starts(length: int, tile: int, stride: int) -> list[int]:
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)  # last tile flush with the border so every pixel is covered
    return starts


def tile_grid(
    height: int, width: int, tile: int | tuple[int, int], overlap: int | tuple[int, int] = 0
) -> list[tuple[int, int]]:
    """Top-left corners (top, left) of tiles covering a whole image, row by row.

    Tiles step by `tile - overlap`; the last row and column are placed flush with the border, so they may
    overlap their neighbours more than `overlap`.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        tile: tile size, an int or (height, width).
        overlap: pixels shared by neighbouring tiles, an int or (vertical, horizontal).

    Raises:
        ConfigError: the image is smaller than the tile, or the overlap is not smaller than the tile.
    """
    th, tw = size_pair(tile, "tile")
    oy, ox = size_pair(overlap, "overlap")
    if th == 0 or tw == 0:
        raise ConfigError(f"tile size must be positive, got {th}×{tw}")
    if oy >= th or ox >= tw:
        raise ConfigError(f"overlap {oy}×{ox} must be smaller than the tile {th}×{tw}")
    if height < th or width < tw:
        raise ConfigError(
            f"image is {height}×{width} but the tile is {th}×{tw}; pad the image first (pad_to_min) "
            "or use a smaller tile"
        )
    return [(top, left) for top in _starts(height, th, th - oy) for left in _starts(width, tw, tw - ox)]


def pad_to_min(image: ArrayT, tile: int | tuple[int, int], value: float = 0.0) -> ArrayT:
    """Pad an image at the bottom and right so it is at least one tile in each direction.

    Args:
        image: numpy array or torch tensor shaped (..., H, W).
        tile: minimum size, an int or (height, width).
        value: fill value of the padding.

    Returns:
        The same type, unchanged when already large enough; the original content stays at the top-left,
        so tile coordinates are valid in both.
    """
    th, tw = size_pair(tile, "tile")
    h, w = image.shape[-2], image.shape[-1]  # type: ignore[attr-defined]
    pad_h, pad_w = max(0, th - h), max(0, tw - w)
    if not pad_h and not pad_w:
        return image
    if isinstance(image, np.ndarray):
        widths = [(0, 0)] * (image.ndim - 2) + [(0, pad_h), (0, pad_w)]
        return np.pad(image, widths, mode="constant", constant_values=value)  # type: ignore[return-value]
    import torch.nn.functional as F

    return F.pad(image, (0, pad_w, 0, pad_h), value=value)  # type: ignore[arg-type, return-value]


def crop_pad(array: np.ndarray, crop: tuple[int, int, int, int] | None, value: float = 0.0) -> np.ndarray:
    """Cut (top, left, height, width) out of an array shaped (..., H, W), padding where it leaves the image.

    Patches near a border (or a box-centred patch on a small image) may reach past the edge; the missing
    part is filled with `value` so every patch has the requested size.
    """
    if crop is None:
        return array
    top, left, ch, cw = crop
    h, w = array.shape[-2:]
    y0, y1, x0, x1 = max(top, 0), min(top + ch, h), max(left, 0), min(left + cw, w)
    if y0 == top and x0 == left and y1 == top + ch and x1 == left + cw:
        return array[..., top : top + ch, left : left + cw]
    out = np.full((*array.shape[:-2], ch, cw), value, dtype=array.dtype)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top : y1 - top, x0 - left : x1 - left] = array[..., y0:y1, x0:x1]
    return out
