"""Patch datasets cut from large images: a patch is a `Sample` with `crop` set, read from its full image."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Literal

import numpy as np

from flawscope.data.cache import DecodeCache
from flawscope.data.sample import Box, DatasetIndex, Sample, SkippedFile
from flawscope.data.tiling import size_pair, tile_grid
from flawscope.errors import ConfigError, DatasetError, ImageReadError

PATCH_CLASSES = ["ok", "defect"]


@functools.lru_cache(maxsize=65536)
def _image_size_cached(path: str, mtime_ns: int, size: int) -> tuple[int, int]:
    from flawscope.data import io

    info = io.image_info(Path(path))
    return int(info.height), int(info.width)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header once per file version."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as err:
        raise ImageReadError(path, err.strerror or "cannot stat the file", "check the path exists") from None
    return _image_size_cached(str(path), st.st_mtime_ns, st.st_size)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = size_pair(size, "patch size")
    if h <= 0 or w <= 0:
        raise ConfigError(f"patch size must be positive, got {size!r}")
    return h, w


def boxes_to_mask(boxes: tuple[Box, ...], height: int, width: int) -> np.ndarray:
    """Rasterise boxes into a bool (H, W) mask; a pixel is inside when any box touches it."""
    mask = np.zeros((height, width), dtype=bool)
    for b in boxes:
        y0, y1 = max(int(np.floor(b.y1)), 0), min(int(np.ceil(b.y2)), height)
        x0, x1 = max(int(np.floor(b.x1)), 0), min(int(np.ceil(b.x2)), width)
        mask[y0:y1, x0:x1] = True
    return mask


def _window_sums(mask: np.ndarray, corners: list[tuple[int, int]], h: int, w: int) -> np.ndarray:
    """Defect pixels inside each (top, left) window, from one summed-area table."""
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = mask.cumsum(0, dtype=np.int64).cumsum(1)
    t = np.array([c[0] for c in corners])
    left = np.array([c[1] for c in corners])
    return table[t + h, left + w] - table[t, left + w] - table[t + h, left] + table[t, left]


def _patch(sample: Sample, crop: tuple[int, int, int, int], defect: bool, group: str, **meta: str) -> Sample:
    return dataclasses.replace(
        sample,
        label="defect" if defect else "ok",
        defective=defect,
        group=group,
        crop=crop,
        # The parent's flaw types may lie outside an ok patch; keep them only where a defect is.
        flaw_types=sample.flaw_types if defect else (),
        meta=sample.meta + tuple(meta.items()),
    )


def _check_whole(sample: Sample) -> None:
    if sample.crop is not None:
        raise DatasetError(
            f"sample {sample.image} is already a patch (crop {sample.crop}); cut patches from whole images"
        )


def _patch_index(index: DatasetIndex, samples: list[Sample], skipped: list[SkippedFile]) -> DatasetIndex:
    return DatasetIndex(
        index.root, index.format, samples, list(PATCH_CLASSES), frozenset({"defect"}),
        list(index.skipped) + skipped,
    )


def extract_patches(
    index: DatasetIndex,
    size: int | tuple[int, int],
    stride: int | None = None,
    overlap: int | None = None,
    min_defect_pixels: int = 1,
    source: Literal["mask", "boxes"] = "mask",
    keep_ok_ratio: float | None = None,
    seed: int = 0,
    cache: DecodeCache | None = None,
) -> DatasetIndex:
    """Cut every image into a grid of patches labelled "defect" or "ok" by the defect pixels they hold.

    Args:
        index: whole-image samples.
        size: patch size, an int or (height, width).
        stride: step between patches; give either stride or overlap (default: no overlap).
        overlap: pixels shared by neighbouring patches.
        min_defect_pixels: a patch with at least this many defect pixels is "defect", else "ok".
        source: "mask" counts mask pixels; "boxes" counts pixels covered by the boxes.
        keep_ok_ratio: keep at most this many ok patches per defect patch (chosen by the seed); None = all.
        seed: seed of the ok-patch subsampling.
        cache: decode cache for the masks (shared with training avoids decoding them twice).

    Returns:
        A binary index (classes ["ok", "defect"]) whose samples keep their image's group, mask, boxes and
        split, with `crop` = (top, left, h, w). An image smaller than a patch gives one patch along that
        side, reaching past the border (padded with zeros when read, as at inference).
    """
    ph, pw = _pair(size)
    if stride is not None and overlap is not None:
        raise ConfigError("give either stride or overlap, not both")
    if stride is not None:
        if not 0 < stride <= min(ph, pw):
            side = min(ph, pw)
            raise ConfigError(f"stride must be in 1..{side} (the patch side) to cover images, got {stride}")
        overlaps: int | tuple[int, int] = (ph - stride, pw - stride)
    else:
        overlaps = overlap or 0
    if source not in ("mask", "boxes"):
        raise ConfigError(f"patch label source {source!r} is unknown; use 'mask' or 'boxes'")
    if min_defect_pixels < 1:
        raise ConfigError(f"min_defect_pixels must be >= 1, got {min_defect_pixels}")
    if keep_ok_ratio is not None and keep_ok_ratio < 0:
        raise ConfigError(f"keep_ok_ratio must be >= 0, got {keep_ok_ratio}")
    cache = cache if cache is not None else DecodeCache(max_bytes=0)
    samples: list[Sample] = []
    skipped: list[SkippedFile] = []
    for sample in index.samples:
        _check_whole(sample)
        h, w = image_size(sample.image)
        # An image smaller than the patch gets one zero-padded patch along that side, as the Predictor pads
        # it at inference; skipping it would drop whole classes of small images from training.
        gh, gw = max(h, ph), max(w, pw)
        corners = tile_grid(gh, gw, (ph, pw), overlaps)
        if source == "mask" and sample.mask is not None:
            mask = cache.get_mask(sample.mask, (h, w), sample.image)
        elif source == "boxes" and (sample.boxes or sample.defective is False):
            mask = boxes_to_mask(sample.boxes, h, w)
        elif sample.defective is False:
            mask = np.zeros((h, w), dtype=bool)  # a known defect-free image: every patch is ok
        else:
            what = "mask" if source == "mask" else "boxes"
            other = "boxes" if source == "mask" else "mask"
            raise DatasetError(
                f"image {sample.image} may be defective but has no {what}, so its patches cannot be "
                f"labelled; use source={other!r} if the dataset has {other}, or drop such images"
            )
        if (gh, gw) != (h, w):
            mask = np.pad(mask, ((0, gh - h), (0, gw - w)))
        counts = _window_sums(mask, corners, ph, pw)
        for (top, left), n in zip(corners, counts, strict=True):
            samples.append(
                _patch(sample, (top, left, ph, pw), bool(n >= min_defect_pixels), sample.group,
                       defect_pixels=str(int(n)))
            )
    if keep_ok_ratio is not None:
        ok = [i for i, s in enumerate(samples) if not s.defective]
        n_keep = min(len(ok), int(round(keep_ok_ratio * (len(samples) - len(ok)))))
        rng = np.random.default_rng(seed)
        drop = {ok[j] for j in rng.choice(len(ok), size=len(ok) - n_keep, replace=False)}
        samples = [s for i, s in enumerate(samples) if i not in drop]
    return _patch_index(index, samples, skipped)


def _centered(center: float, size: int, length: int) -> int:
    return int(min(max(round(center - size / 2), 0), length - size))


HARD_OK_REACH = 2.0  # hard negatives are centred within this many patch sides of a box centre
ON_PART_FRACTION = 0.95  # ... and have at least this share of unsaturated pixels (on the part, not the air)


def _on_part(patch: np.ndarray) -> bool:
    """True when a [0, 1] patch lies on the part: mostly unsaturated pixels and not flat."""
    inside = (patch > 0.02) & (patch < 0.98)
    return bool(inside.mean() >= ON_PART_FRACTION and patch.std() >= 0.01)


def _hard_ok_corners(image: np.ndarray, boxes: tuple[Box, ...], size: int, n: int,
                     rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to n defect-free patch corners on the part, near the boxes when the image has any."""
    h, w = image.shape[-2:]
    k = 64 * max(1, n)
    if boxes:
        centres = np.array([((b.y1 + b.y2) / 2, (b.x1 + b.x2) / 2) for b in boxes])
        pick = centres[rng.integers(0, len(boxes), size=k)]
        offsets = rng.uniform(-HARD_OK_REACH * size, HARD_OK_REACH * size, size=(k, 2))
        tops = np.clip(np.round(pick[:, 0] + offsets[:, 0] - size / 2), 0, h - size).astype(int)
        lefts = np.clip(np.round(pick[:, 1] + offsets[:, 1] - size / 2), 0, w - size).astype(int)
    else:
        tops, lefts = rng.integers(0, h - size + 1, size=k), rng.integers(0, w - size + 1, size=k)
    free = np.ones(k, dtype=bool)
    for b in boxes:
        free &= ~((lefts < b.x2) & (lefts + size > b.x1) & (tops < b.y2) & (tops + size > b.y1))
    gray = image.mean(axis=0) if image.ndim == 3 else image
    corners: list[tuple[int, int]] = []
    for top, left in zip(tops[free], lefts[free], strict=True):
        if (int(top), int(left)) not in corners and _on_part(gray[top : top + size, left : left + size]):
            corners.append((int(top), int(left)))
            if len(corners) == n:
                break
    return corners


def xdefects_patches(
    index: DatasetIndex,
    size: int = 32,
    n_ok_per_image: int = 4,
    seed: int = 0,
    n_hard_ok_per_image: int = 0,
) -> DatasetIndex:
    """The GDXray "Xdefects" protocol (SA-BCNN paper): defect patches centred on boxes, ok patches elsewhere.

    Each annotated box gives one size×size patch centred on it (shifted inside the image at borders); each
    image also gives up to `n_ok_per_image` random patches that overlap no box, including images with no
    defect. Images marked defective but without boxes give no ok patches (the flaw could be anywhere).

    Args:
        index: whole-image samples with boxes.
        size: patch side in pixels (32 in the paper).
        n_ok_per_image: defect-free patches drawn per image.
        seed: seed of the ok-patch positions (each image draws from its own stream, so adding images does
            not move the others' patches).
        n_hard_ok_per_image: extra defect-free patches per image that lie on the part (not the air around
            it, which random patches often show): near the image's boxes (centred within HARD_OK_REACH patch
            sides of one) when it has any, anywhere on the part when not. Random ok patches of GDXray are
            largely flat background, so a network can score "casting texture" instead of "flaw"; these hard
            negatives, marked meta kind=hard, take that shortcut away. They come from their own random
            stream, so the protocol's patches are the same with or without them.

    Returns:
        A binary index; each patch keeps its image's group (the GDXray source groups castings by series, so
        no series spans train and test).
    """
    if size <= 0:
        raise ConfigError(f"patch size must be positive, got {size}")
    if n_ok_per_image < 0 or n_hard_ok_per_image < 0:
        raise ConfigError(f"ok patches per image must be >= 0, got {n_ok_per_image} and "
                          f"{n_hard_ok_per_image} hard ones")
    samples: list[Sample] = []
    skipped: list[SkippedFile] = []
    for position, sample in enumerate(index.samples):
        _check_whole(sample)
        h, w = image_size(sample.image)
        if h < size or w < size:
            skipped.append(SkippedFile(sample.image, f"image {h}×{w} is smaller than the {size}² patch"))
            continue
        for b in sample.boxes:
            top = _centered((b.y1 + b.y2) / 2, size, h)
            left = _centered((b.x1 + b.x2) / 2, size, w)
            samples.append(_patch(sample, (top, left, size, size), True, sample.group,
                                  box=f"{b.x1:g},{b.y1:g},{b.x2:g},{b.y2:g}"))
        if not (n_ok_per_image or n_hard_ok_per_image) or (sample.defective and not sample.boxes):
            continue
        rng = np.random.default_rng([seed, position])
        # Draw many candidates at once and keep the first that miss every box.
        tops = rng.integers(0, h - size + 1, size=64 * n_ok_per_image)
        lefts = rng.integers(0, w - size + 1, size=64 * n_ok_per_image)
        free = np.ones(tops.shape, dtype=bool)
        for b in sample.boxes:
            free &= ~((lefts < b.x2) & (lefts + size > b.x1) & (tops < b.y2) & (tops + size > b.y1))
        for top, left in list(zip(tops[free], lefts[free], strict=True))[:n_ok_per_image]:
            samples.append(_patch(sample, (int(top), int(left), size, size), False, sample.group))
        if n_hard_ok_per_image:
            from flawscope.data.io import load_image

            image = np.asarray(load_image(sample.image))
            hard_rng = np.random.default_rng([seed, position, 1])
            for top, left in _hard_ok_corners(image, sample.boxes, size, n_hard_ok_per_image, hard_rng):
                samples.append(_patch(sample, (top, left, size, size), False, sample.group, kind="hard"))
    return _patch_index(index, samples, skipped)
