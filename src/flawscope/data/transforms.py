"""Augmentation and model-input preparation (torchvision.transforms.v2) for image, mask and boxes together."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError

if TYPE_CHECKING:
    import torch

PRESETS = ("none", "flips", "radiograph")


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation.

    Attributes:
        hflip: probability of a horizontal flip (1/√2 in the steel-surface paper, so both flips together,
            a 180° turn, happen half of the time).
        vflip: probability of a vertical flip.
        noise_std: σ of Gaussian noise added to the normalised image (X + σ·Z; 0.15 in the radiograph paper).
        scale: (min, max) random zoom factor; (1, 1) = none.
        rotate: maximum rotation in degrees; 0 = none.
        brightness: brightness jitter factor (ColorJitter); 0 = none.
        contrast: contrast jitter factor (ColorJitter); 0 = none.
    """

    hflip: float = 1 / math.sqrt(2)
    vflip: float = 1 / math.sqrt(2)
    noise_std: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment {name} is a probability in [0, 1], got {getattr(self, name)}")
        for name in ("noise_std", "rotate", "brightness", "contrast"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment {name} must be >= 0, got {getattr(self, name)}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"augment scale must be (min, max) with 0 < min <= max, got {self.scale}")
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AugmentConfig:
        """A named preset, with optional field overrides.

        Presets:
            none: no augmentation.
            flips: horizontal and vertical flips, p = 1/√2 each (the steel-surface paper).
            radiograph: flips + Gaussian noise X + 0.15·Z + small zoom/rotation + brightness/contrast jitter.
        """
        if name == "none":
            base = cls(hflip=0.0, vflip=0.0)
        elif name == "flips":
            base = cls()
        elif name == "radiograph":
            base = cls(noise_std=0.15, scale=(0.9, 1.1), rotate=10.0, brightness=0.1, contrast=0.1)
        else:
            raise ConfigError(f"augment preset {name!r} is unknown; use one of {', '.join(PRESETS)}")
        names = [f.name for f in fields(cls)]
        if unknown := set(overrides) - set(names):
            raise ConfigError(f"augment has no option(s) {sorted(unknown)}; options: {names}")
        return dataclasses.replace(base, **overrides)


def sample_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed for one sample in one epoch (independent of the DataLoader worker).

    Args:
        seed: the run's seed (non-negative).
        epoch: training epoch.
        index: sample position.
        stream: separates independent uses of the same (seed, epoch, index), e.g. sampling vs augmentation.
    """
    if min(seed, epoch, index, stream) < 0:
        raise ConfigError(f"seeds must be non-negative, got seed={seed}, epoch={epoch}, index={index}")
    state = np.random.SeedSequence([seed, epoch, index, stream]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


class FlawTransform:
    """Applies one v2 pipeline to an image and, consistently, to its mask and boxes.

    torchvision's v2 transforms draw from torch's global generator, so a seeded call runs inside
    `torch.random.fork_rng` with that seed: the result depends only on the seed, never on the worker or on
    what ran before, and the caller's random state is left untouched.
    """

    def __init__(self, pipeline: Any) -> None:
        from torchvision.transforms import v2

        self.pipeline = pipeline
        # Boxes pushed out of the frame are clipped, and dropped once they have no area left.
        self.box_cleanup = v2.Compose([v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(labels_getter=None)])

    def __repr__(self) -> str:
        return f"FlawTransform({self.pipeline})"

    def __call__(
        self,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Transform a sample.

        Args:
            image: float (C, H, W), intensities in [0, 1].
            mask: (H, W) or (1, H, W), nonzero = defect; None when not annotated.
            boxes: (N, 4) x1, y1, x2, y2 in the image's pixels; None when not annotated.
            seed: seed of this draw (see `sample_seed`); None uses torch's current random state.

        Returns:
            dict with "image" float32 (C, h, w), "mask" float32 (1, h, w) or None, "boxes" float32 (M, 4)
            or None (boxes left with no area after cropping are dropped).
        """
        import torch
        from torchvision import tv_tensors

        h, w = image.shape[-2:]
        inputs: dict[str, Any] = {"image": tv_tensors.Image(image.float())}
        if mask is not None:
            if mask.shape[-2:] != (h, w):
                raise ConfigError(f"mask is {tuple(mask.shape[-2:])} but image is {(h, w)}; they must match")
            inputs["mask"] = tv_tensors.Mask(mask.reshape(1, h, w).to(torch.uint8))
        if boxes is not None:
            inputs["boxes"] = tv_tensors.BoundingBoxes(
                boxes.float().reshape(-1, 4), format="XYXY", canvas_size=(h, w)
            )
        if seed is None:
            out = self.pipeline(inputs)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = self.pipeline(inputs)
        if boxes is not None:
            out["boxes"] = self.box_cleanup({"boxes": out["boxes"]})["boxes"]
        return {
            "image": out["image"].as_subclass(torch.Tensor).float(),
            "mask": out["mask"].as_subclass(torch.Tensor).float() if mask is not None else None,
            "boxes": out["boxes"].as_subclass(torch.Tensor).float() if boxes is not None else None,
        }


def _geometry(preprocess: PreprocessConfig, train: bool) -> list[Any]:
    from torchvision.transforms import v2

    size = list(preprocess.input_size)
    if preprocess.resize:
        return [v2.Resize(size, antialias=True)]  # v2 resizes Mask with nearest neighbour
    if train:
        return [v2.RandomCrop(size, pad_if_needed=True)]
    return [v2.CenterCrop(size)]  # pads with zeros when the image is smaller


STANDARDIZE_STD_FLOOR = 0.01  # in [0, 1] intensity units: a flat patch keeps its noise small


def background_sigma(height: int, width: int) -> float:
    """σ of the background blur of `subtract_background`: an eighth of the input's shorter side."""
    return max(1.0, min(height, width) / 8)


def normalize_input(image: torch.Tensor, preprocess: PreprocessConfig) -> torch.Tensor:
    """(…, C, H, W) intensities in [0, 1] → model input by `preprocess.normalize`, each input on its own.

    fixed: (x - mean) / std; standardize: (x - its mean) / max(its std, STANDARDIZE_STD_FLOOR) over all its
    channels; subtract_background: (x - Gaussian blur of x) / std, σ = `background_sigma`.
    """
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    x = image.as_subclass(torch.Tensor)
    shape = (-1, 1, 1)
    if preprocess.normalize == "standardize":
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
        out = (x - mean) / x.std(dim=(-3, -2, -1), keepdim=True).clamp_min(STANDARDIZE_STD_FLOOR)
    else:
        std = torch.tensor(preprocess.std, dtype=x.dtype, device=x.device).view(shape)
        if preprocess.normalize == "subtract_background":
            h, w = x.shape[-2:]
            sigma = background_sigma(h, w)
            # Odd kernel of ±3σ, short enough for the reflect padding (padding < side).
            size = min(2 * math.ceil(3 * sigma) + 1, 2 * min(h, w) - 1)
            size = max(3, size if size % 2 else size - 1)
            out = (x - F.gaussian_blur(x, [size, size], [sigma, sigma])) / std
        else:
            mean = torch.tensor(preprocess.mean, dtype=x.dtype, device=x.device).view(shape)
            out = (x - mean) / std
    return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.TVTensor) else out


def _finish(preprocess: PreprocessConfig) -> list[Any]:
    from functools import partial

    from torchvision import tv_tensors
    from torchvision.transforms import v2

    if preprocess.normalize == "fixed":
        return [v2.Normalize(list(preprocess.mean), list(preprocess.std))]  # touches only the image
    return [v2.Lambda(partial(normalize_input, preprocess=preprocess), tv_tensors.Image)]


def build_train_transform(aug: AugmentConfig, preprocess: PreprocessConfig) -> FlawTransform:
    """Training pipeline: resize (or random crop), flips, affine, jitter, normalise, then noise."""
    from torchvision.transforms import v2

    steps = _geometry(preprocess, train=True)
    if aug.hflip:
        steps.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.vflip:
        steps.append(v2.RandomVerticalFlip(aug.vflip))
    if aug.rotate or aug.scale != (1.0, 1.0):
        steps.append(v2.RandomAffine(degrees=aug.rotate, scale=aug.scale))
    if aug.brightness or aug.contrast:
        steps.append(v2.ColorJitter(brightness=aug.brightness or None, contrast=aug.contrast or None))
    steps += _finish(preprocess)
    if aug.noise_std:
        # After normalisation, as in the paper's X + 0.15·Z on the network input; no clipping there.
        steps.append(v2.GaussianNoise(mean=0.0, sigma=aug.noise_std, clip=False))
    return FlawTransform(v2.Compose(steps))


def build_eval_transform(preprocess: PreprocessConfig) -> FlawTransform:
    """Evaluation pipeline: resize (or centre crop/pad) and normalise; no randomness."""
    from torchvision.transforms import v2

    return FlawTransform(v2.Compose(_geometry(preprocess, train=False) + _finish(preprocess)))
