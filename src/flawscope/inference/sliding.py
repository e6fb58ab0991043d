"""Sliding-window inference on radiographs of any size (5000x600 welds, 3000x3000 16-bit panels).

Tiles come from `flawscope.data.tiling.tile_grid` (the same geometry as patch extraction) and go through the
model a batch at a time, so memory is bounded by one batch of tiles plus the full-size output. Overlapping
tiles are blended with a Tukey (tapered-cosine) window: inside the image each tile fades out over the
`overlap` pixels it shares with its neighbour, with cos^2 / sin^2 ramps that add up to one, so seams do not
show and the tile-edge pixels (where a network sees zero padding) get no weight. Sides on the image border
keep full weight, so the border is covered too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from flawscope.data.tiling import size_pair
from flawscope.errors import ConfigError

Window = Literal["tukey", "constant"]


def _reflect_pad_to(image: Any, height: int, width: int) -> Any:
    """Pad (C, H, W) at the bottom/right to at least (height, width) by mirroring the image.

    torch's reflect mode cannot pad by more than the size - 1, so very small images are mirrored repeatedly;
    a 1-pixel side has nothing to mirror and is replicated.
    """
    import torch.nn.functional as F

    x = image[None]
    while x.shape[-2] < height or x.shape[-1] < width:
        h, w = x.shape[-2:]
        ph, pw = min(max(0, height - h), h - 1), min(max(0, width - w), w - 1)
        if ph == 0 and h < height or pw == 0 and w < width:
            x = F.pad(x, (0, max(0, width - w), 0, max(0, height - h)), mode="replicate")
        else:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x[0]


def _taper(length: int, overlap: int, fade_start: bool, fade_end: bool, dtype: Any) -> Any:
    """1-D weights: 1, with cos^2 ramps over `overlap` pixels at the faded ends (0 at the very edge)."""
    import torch

    w = torch.ones(length, dtype=dtype)
    if overlap >= 2:
        # sin^2 rising from 0 at the tile edge to 1; the neighbour's falling cos^2 completes it to 1.
        ramp = torch.sin(torch.linspace(0.0, math.pi / 2, overlap, dtype=dtype)) ** 2
        if fade_start:
            w[:overlap] = ramp
        if fade_end:
            w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def tile_weight(
    corner: tuple[int, int], tile: tuple[int, int], overlap: tuple[int, int], image: tuple[int, int],
    window: Window = "tukey",
) -> Any:
    """float64 (th, tw) blend weights of the tile at `corner` of an image of size `image` (see module doc)."""
    import torch

    (t, left), (th, tw), (oy, ox), (ph, pw) = corner, tile, overlap, image
    if window == "constant":
        return torch.ones((th, tw), dtype=torch.float64)
    wy = _taper(th, oy, t > 0, t + th < ph, torch.float64)
    wx = _taper(tw, ox, left > 0, left + tw < pw, torch.float64)
    return wy[:, None] * wx[None, :]


def sliding_window_predict(
    fn: Callable[[Any], Any],
    image: Any,
    tile: int | tuple[int, int],
    overlap: int | tuple[int, int] = 0,
    batch_size: int = 8,
    window: Window = "tukey",
    device: Any = None,
    no_grad: bool = True,
) -> Any:
    """Run `fn` over overlapping tiles of a large image and blend the tile outputs into one full-size map.

    Args:
        fn: maps a batch of tiles (B, C, th, tw) to (B, C_out, th, tw) (a segmenter, a heatmap explainer).
        image: float tensor (C, H, W) of any size; an image smaller than the tile is reflect-padded and the
            output cropped back.
        tile: tile size, an int or (height, width).
        overlap: pixels shared by neighbouring tiles (the blend zone); use at least the network's
            receptive-field margin so tile edges do not show.
        batch_size: tiles per call of `fn` (bounds memory).
        window: "tukey" (smooth crossfade, default) or "constant" (plain average of overlapping tiles).
        device: where tiles are sent for `fn` (e.g. "cuda"); default the image's device. The full-size
            output stays on the image's device.
        no_grad: run `fn` under torch.no_grad (set False for gradient-based explainers).

    Returns:
        float32 tensor (C_out, H, W) on the image's device.

    Raises:
        ConfigError: bad image shape/dtype, tile, overlap or batch size, or `fn` returns the wrong shape.
    """
    import contextlib

    import torch

    from flawscope.data.tiling import tile_grid

    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        shape = tuple(getattr(image, "shape", ()))
        raise ConfigError(
            f"image must be a torch tensor shaped (C, H, W), got {type(image).__name__} {shape}; "
            "use torch.from_numpy(load_image(path))"
        )
    if not image.is_floating_point():
        raise ConfigError(
            f"image has dtype {image.dtype}; normalise it to float first (flawscope.data.io.load_image)"
        )
    th, tw = size_pair(tile, "tile")
    oy, ox = size_pair(overlap, "overlap")
    if th < 1 or tw < 1 or oy >= th or ox >= tw:
        raise ConfigError(f"tile {th}x{tw} and overlap {oy}x{ox}: need tile >= 1 and overlap < tile")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if window not in ("tukey", "constant"):
        raise ConfigError(f"window {window!r} is unknown; use 'tukey' or 'constant'")

    _, height, width = image.shape
    padded = _reflect_pad_to(image, th, tw)
    ph, pw = padded.shape[-2:]
    corners = tile_grid(ph, pw, (th, tw), (oy, ox))
    run_on = torch.device(device) if device is not None else image.device
    # float64 sums: the weighted mean of identical tile outputs rounds back to them exactly in float32.
    acc: torch.Tensor | None = None
    weight_sum = torch.zeros((1, ph, pw), dtype=torch.float64, device=image.device)
    grad_ctx = torch.no_grad if no_grad else contextlib.nullcontext

    for start in range(0, len(corners), batch_size):
        chunk = corners[start : start + batch_size]
        tiles = torch.stack([padded[:, t : t + th, left : left + tw] for t, left in chunk]).to(run_on)
        with grad_ctx():
            out = fn(tiles)
        if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != len(chunk) \
                or tuple(out.shape[-2:]) != (th, tw):
            raise ConfigError(
                f"fn returned {tuple(getattr(out, 'shape', ()))} for tiles {tuple(tiles.shape)}; it must map "
                f"(B, C, {th}, {tw}) to (B, C_out, {th}, {tw}) (upsample model outputs to the tile size)"
            )
        out = out.detach().to(image.device, torch.float64)
        if acc is None:
            acc = torch.zeros((out.shape[1], ph, pw), dtype=torch.float64, device=image.device)
        for (t, left), o in zip(chunk, out, strict=True):
            w = tile_weight((t, left), (th, tw), (oy, ox), (ph, pw), window).to(image.device)
            acc[:, t : t + th, left : left + tw] += o * w
            weight_sum[:, t : t + th, left : left + tw] += w
    result = acc / weight_sum  # type: ignore[operator]  (tile_grid always returns at least one tile)
    return result[:, :height, :width].to(torch.float32)
