"""The Preprocessor: a file, bytes or array becomes model input exactly as the model was trained on.

It is built from the model's `PreprocessConfig` (timm's pretrained_cfg) and is the only eval-time
preprocessing: decoding and intensity scaling (`flawscope.data.io.load_image`), then the model's geometry and
normalisation, which is `flawscope.data.transforms.build_eval_transform` — the same transform the
validation and test datasets apply during training.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from flawscope.data.cache import DecodeCache
    from flawscope.data.sample import Sample

ImageSource = str | os.PathLike | bytes | np.ndarray


class Preprocessor:
    """Turns images into this model's input.

    Args:
        config: the model's PreprocessConfig.
    """

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        self._transform: Any = None

    def __repr__(self) -> str:
        return f"Preprocessor({self.config})"

    def load(self, source: ImageSource) -> np.ndarray:
        """float32 (C, H, W) in [0, 1] at the image's own size, from a path, encoded bytes or an array.

        An array is taken as decoded pixels: (H, W) or (H, W, 3) raw values are scaled by the model's
        intensity rule; (C, H, W) float arrays in [0, 1] are taken as they are.

        Raises:
            ImageReadError: an unreadable file or bytes. ConfigError: an array of the wrong shape.
        """
        from flawscope.data.io import load_image

        pre = self.config
        if isinstance(source, bytes | bytearray):
            return self._load_bytes(bytes(source))
        if isinstance(source, np.ndarray):
            return self._from_array(source)
        return load_image(source, pre.intensity, pre.in_chans)

    def _load_bytes(self, data: bytes) -> np.ndarray:
        from flawscope.data.io import load_image
        from flawscope.errors import ImageReadError

        suffix = _sniff_suffix(data)
        if suffix is None:
            raise ImageReadError("<uploaded bytes>", f"not a PNG, JPEG, TIFF, BMP or DICOM image "
                                 f"({len(data)} bytes, starting {data[:8]!r})", "send the image file itself")
        # The readers work on files: a temporary one with the format's suffix serves every one of them.
        fd, name = tempfile.mkstemp(prefix="flawscope-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return load_image(name, self.config.intensity, self.config.in_chans)
        finally:
            Path(name).unlink(missing_ok=True)

    def _from_array(self, array: np.ndarray) -> np.ndarray:
        from flawscope.data.io import pixels_to_image

        pre = self.config
        a = np.asarray(array)
        if a.ndim == 3 and a.shape[0] == pre.in_chans and np.issubdtype(a.dtype, np.floating):
            return np.ascontiguousarray(np.clip(a, 0.0, 1.0), dtype=np.float32)
        if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3):
            bits = a.dtype.itemsize * 8 if np.issubdtype(a.dtype, np.integer) else 8
            return pixels_to_image(a, bits, pre.intensity, pre.in_chans)
        raise ConfigError(
            f"image array has shape {a.shape} and dtype {a.dtype}; give (H, W) or (H, W, 3) pixels, or a "
            f"float ({pre.in_chans}, H, W) array in [0, 1]"
        )

    def load_sample(self, sample: Sample, cache: DecodeCache | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(image, ground-truth mask or None) of a dataset sample: its crop, at native resolution."""
        from flawscope.data.tiling import crop_pad

        pre = self.config
        if cache is not None:
            full = cache.get_image(sample.image, pre.intensity, pre.in_chans)
        else:
            full = self.load(sample.image)
        image = np.array(crop_pad(full, sample.crop))
        gt = None
        if sample.mask is not None:
            if cache is not None:
                full_mask = cache.get_mask(sample.mask, tuple(full.shape[-2:]), sample.image)
            else:
                from flawscope.data.io import load_mask

                full_mask = load_mask(sample.mask, tuple(full.shape[-2:]), sample.image)
            gt = np.array(crop_pad(full_mask, sample.crop)).astype(bool)
        return image, gt

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """(…, C, H, W) image in [0, 1] → the model's normalised input (its `normalize` mode), any size."""
        from flawscope.data.transforms import normalize_input

        return normalize_input(image, self.config)

    def __call__(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A whole image (C, H, W) in [0, 1] → the model's input at its input size (resize or centre crop)."""
        import torch

        from flawscope.data.transforms import build_eval_transform

        if self._transform is None:
            self._transform = build_eval_transform(self.config)
        x = torch.as_tensor(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
        return self._transform(x)["image"]


_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"II*\x00", ".tif"),
          (b"MM\x00*", ".tif"), (b"BM", ".bmp"))


def _sniff_suffix(data: bytes) -> str | None:
    """The file suffix of encoded image bytes, from their magic number (DICOM: "DICM" at byte 128)."""
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    return ".dcm" if data[128:132] == b"DICM" else None
