"""Images a person looks at: a displayable uint8 image, and a mask overlay (predicted red, truth green)."""

from __future__ import annotations

from typing import Any

import numpy as np

from flawscope.errors import ConfigError


def _array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _binary(mask: Any, name: str) -> np.ndarray:
    m = _array(mask, name)
    if m.dtype == np.bool_:
        return m
    if np.issubdtype(m.dtype, np.floating):
        return m >= 0.5
    if np.issubdtype(m.dtype, np.integer):
        return m != 0
    raise ConfigError(f"{name} has dtype {m.dtype}; give a bool, integer or float mask")


def to_uint8_image(image: Any) -> np.ndarray:
    """A displayable uint8 (H, W) or (H, W, 3) array from a mask, float, 8- or 16-bit image.

    (C, H, W) arrays (C = 1 or 3) are moved to channels-last; floats in [0, 1] are scaled by 255; other ranges
    (16-bit, logits) are min-max stretched for display.
    """
    a = _array(image, "image")
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ConfigError(
            f"image has shape {a.shape}; expected (H, W), (H, W, 3) or (C, H, W) with C 1 or 3"
        )
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    a = a.astype(np.float64)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if not (lo >= 0.0 and hi <= 1.0):
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def overlay_mask(image: Any, gt: Any = None, pred: Any = None, alpha: float = 0.4) -> np.ndarray:
    """RGB uint8 overlay: prediction filled in translucent red, ground truth outlined in green.

    Args:
        image: (H, W), (H, W, 3) or (C, H, W) image.
        gt: ground-truth mask (H, W) or None.
        pred: predicted mask (bool/int, or probabilities >= 0.5) or None.
        alpha: opacity of the red prediction fill.
    """
    from scipy import ndimage

    rgb = to_uint8_image(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    out = rgb.astype(np.float32)
    for m, name in ((gt, "gt"), (pred, "pred")):
        shape = None if m is None else np.squeeze(_array(m, name)).shape
        if shape is not None and shape != rgb.shape[:2]:
            raise ConfigError(
                f"{name} mask has shape {shape} but the image is {rgb.shape[:2]}; they must match"
            )
    if pred is not None:
        p = np.squeeze(_binary(pred, "pred"))
        out[p] = (1 - alpha) * out[p] + alpha * np.array([255.0, 0.0, 0.0])
    if gt is not None:
        g = np.squeeze(_binary(gt, "gt"))
        outline = g & ~ndimage.binary_erosion(g, structure=np.ones((3, 3), bool), border_value=0)
        out[outline] = (0.0, 255.0, 0.0)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
