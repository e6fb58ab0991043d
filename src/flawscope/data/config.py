"""Preprocessing configuration: how raw pixel values become model input."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from flawscope.errors import ConfigError

IntensityMode = Literal["minmax", "window", "percentile", "dtype"]
NORMALIZE_MODES = ("fixed", "standardize", "subtract_background")
OVERSAMPLE_MODES = ("none", "class", "group")


@dataclass(frozen=True)
class IntensityConfig:
    """How raw intensities map to [0, 1].

    Modes:
        minmax: per image, (x - min) / (max - min) (the seed papers' practice).
        window: fixed window [low, high], e.g. a 16-bit detector's 0..65535; values outside are clipped.
        percentile: per image, clip to the [low, high] percentiles, then scale.
        dtype: divide by the full range of the file's integer type (255 for 8-bit, 65535 for 16-bit).
    """

    mode: IntensityMode = "dtype"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("minmax", "window", "percentile", "dtype"):
            raise ConfigError(
                f"intensity mode {self.mode!r} is unknown; use one of minmax, window, percentile, dtype"
            )
        if self.mode in ("window", "percentile") and not self.high > self.low:
            raise ConfigError(f"intensity {self.mode} needs high > low, got low={self.low}, high={self.high}")
        if self.mode == "percentile" and not (0 <= self.low < self.high <= 100):
            raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.low}, {self.high}")

    @classmethod
    def parse(cls, text: str) -> IntensityConfig:
        """Parse 'dtype', 'minmax', 'window:0:65535' or 'percentile:0.5:99.5'."""
        parts = text.split(":")
        try:
            if len(parts) == 1:
                return cls(parts[0])  # type: ignore[arg-type]
            if len(parts) == 3:
                return cls(parts[0], float(parts[1]), float(parts[2]))  # type: ignore[arg-type]
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
        raise ConfigError(
            f"intensity {text!r} is not understood; use dtype, minmax, window:LOW:HIGH or percentile:LOW:HIGH"
        )

    def __str__(self) -> str:
        return self.mode if self.mode in ("dtype", "minmax") else f"{self.mode}:{self.low:g}:{self.high:g}"


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that turns a file into a model input tensor; carried by every model (timm's pretrained_cfg).

    Attributes:
        in_chans: 1 for grayscale radiographs (default), 3 to keep RGB.
        intensity: raw value -> [0, 1] mapping.
        mean, std: normalisation applied after intensity scaling, one value per channel.
        input_size: (height, width) the model is trained on (patch or resized image).
        resize: True to resize whole images to input_size; False to crop patches at native resolution.
        normalize: how the [0, 1] input is centred and scaled, after resizing or cropping, so per model input:
            "fixed" = (x - mean) / std; "standardize" = (x - its own mean) / its own std (std floored at
            0.01 so flat patches are not blown up into noise), which removes exposure and contrast
            differences between series; "subtract_background" = (x - a Gaussian blur of x with σ = an
            eighth of the input side) / std, the classical X-ray inspection background subtraction:
            slow thickness and exposure gradients go, small flaws stay.
    """

    in_chans: int = 1
    intensity: IntensityConfig = IntensityConfig()
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    input_size: tuple[int, int] = (224, 224)
    resize: bool = True
    normalize: str = "fixed"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            raise ConfigError(f"normalize {self.normalize!r} is unknown; use one of "
                              f"{', '.join(NORMALIZE_MODES)}")
        if self.in_chans not in (1, 3):
            raise ConfigError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {self.in_chans}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) == 1 and self.in_chans == 3:
                object.__setattr__(self, name, tuple(value) * 3)
            elif len(value) != self.in_chans:
                raise ConfigError(f"{name} has {len(value)} values but in_chans is {self.in_chans}")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std must be positive, got {self.std}")

    def to_dict(self) -> dict:
        """Plain dict (YAML/JSON friendly)."""
        d = asdict(self)
        d["intensity"] = str(self.intensity)
        d["mean"], d["std"], d["input_size"] = list(self.mean), list(self.std), list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        """Inverse of to_dict."""
        d = dict(d)
        if isinstance(d.get("intensity"), str):
            d["intensity"] = IntensityConfig.parse(d["intensity"])
        for key in ("mean", "std", "input_size"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
