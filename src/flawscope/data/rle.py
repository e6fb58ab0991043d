"""Run-length encoded masks in the Kaggle/Severstal convention.

The mask is flattened column by column (Fortran order: top to bottom, then left to right), and the string
holds pairs "start length" with 1-based starts, e.g. "1 3 257 2" on a 256-row mask marks rows 0-2 of
column 0 and rows 0-1 of column 1. An empty string is an empty mask.
"""

from __future__ import annotations

import numpy as np

from flawscope.errors import DatasetError

__all__ = ["rle_decode", "rle_encode"]


def _preview(rle: str, n: int = 40) -> str:
    """The start of an RLE string, for error messages (Severstal strings run to thousands of characters)."""
    text = " ".join(rle.split())
    return repr(text if len(text) <= n else text[:n] + "…")


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode an RLE string into a boolean mask.

    Args:
        rle: "start length start length ..." with 1-based starts in column-major order; "" = empty mask.
        height: mask rows.
        width: mask columns.

    Returns:
        bool array of shape (height, width).

    Raises:
        DatasetError: the size is not positive, the string is malformed, or a run falls outside the mask.
    """
    sizes_ok = all(isinstance(n, int | np.integer) and n >= 1 for n in (height, width))
    if not sizes_ok:
        raise DatasetError(f"RLE {_preview(str(rle))}: mask size must be positive, not {height}×{width}")
    if not isinstance(rle, str):
        raise DatasetError(f"RLE must be a string of 'start length' pairs, got {type(rle).__name__} {rle!r}")
    tokens = rle.split()
    n_pixels = int(height) * int(width)
    if not tokens:
        return np.zeros((height, width), dtype=bool)
    if len(tokens) % 2:
        raise DatasetError(
            f"RLE {_preview(rle)} has {len(tokens)} numbers; it must hold 'start length' pairs (even count)"
        )
    try:
        runs = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise DatasetError(
            f"RLE {_preview(rle)} contains {bad!r}, which is not an integer; expected 'start length' pairs"
        ) from None
    starts, lengths = runs[:, 0], runs[:, 1]
    if (starts < 1).any():
        raise DatasetError(f"RLE {_preview(rle)} has start {int(starts.min())}; starts are 1-based (>= 1)")
    if (lengths < 1).any():
        raise DatasetError(f"RLE {_preview(rle)} has run length {int(lengths.min())}; lengths must be >= 1")
    ends = starts - 1 + lengths  # exclusive, 0-based
    if (ends > n_pixels).any():
        i = int(np.argmax(ends > n_pixels))
        raise DatasetError(
            f"RLE {_preview(rle)} has run '{starts[i]} {lengths[i]}' ending at pixel {ends[i]}, past the end "
            f"of a "
            f"{height}×{width} mask ({n_pixels} pixels); check the mask size (height, width) given with it"
        )
    # +1 at each run start, -1 just past its end; the running sum is > 0 inside any run (overlaps stay union).
    edges = np.zeros(n_pixels + 1, dtype=np.int32)
    np.add.at(edges, starts - 1, 1)
    np.add.at(edges, ends, -1)
    flat = np.cumsum(edges[:-1]) > 0
    return flat.reshape((height, width), order="F")


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask (nonzero = defect) as an RLE string; "" for an empty mask.

    Raises:
        DatasetError: the mask is not 2-D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DatasetError(f"rle_encode needs a 2-D (H, W) mask, got shape {mask.shape}")
    pixels = np.concatenate([[False], mask.astype(bool).ravel(order="F"), [False]])
    changes = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1  # 1-based positions where a run starts or ends
    changes[1::2] -= changes[::2]
    return " ".join(map(str, changes.tolist()))
