"""Input normalisation modes: fixed mean/std, per-input standardisation, background subtraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flawscope.data.config import PreprocessConfig
from flawscope.data.transforms import (
    AugmentConfig,
    build_eval_transform,
    build_train_transform,
    normalize_input,
)
from flawscope.errors import ConfigError
from flawscope.inference.preprocess import Preprocessor


def _patch(seed: int = 0, size: int = 32) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 0.5, size=(1, size, size)).astype(np.float32)
    x[0, 12:16, 12:16] += 0.3  # a small bright flaw
    return torch.from_numpy(x)


def test_standardize_removes_exposure_and_contrast_changes() -> None:
    pre = PreprocessConfig(input_size=(32, 32), resize=False, normalize="standardize")
    x = _patch()
    out = normalize_input(x, pre)
    assert out.mean().item() == pytest.approx(0, abs=1e-5) and out.std().item() == pytest.approx(1, abs=1e-4)
    brighter = normalize_input(0.6 * x + 0.2, pre)  # another exposure of the same part
    assert torch.allclose(out, brighter, atol=1e-4)
    flat = normalize_input(torch.full((1, 32, 32), 0.4) + 1e-4 * torch.randn(1, 32, 32), pre)
    assert flat.abs().max() < 0.1  # a flat patch is not blown up into noise (std floor)


def test_background_subtraction_keeps_the_flaw_and_drops_a_thickness_gradient() -> None:
    pre = PreprocessConfig(input_size=(32, 32), resize=False, normalize="subtract_background")
    x = _patch()
    ramp = torch.linspace(0, 0.3, 32).view(1, 1, 32).expand(1, 32, 32)
    plain, sloped = normalize_input(x, pre), normalize_input(x + ramp, pre)
    inner = (slice(None), slice(8, 24), slice(8, 24))  # away from the reflect-padded border
    assert torch.allclose(plain[inner], sloped[inner], atol=0.02)
    assert plain[0, 12:16, 12:16].mean() > plain[0, :8, :8].mean() + 0.5  # the flaw stands out


def test_training_and_the_predictor_normalise_alike() -> None:
    for mode in ("fixed", "standardize", "subtract_background"):
        pre = PreprocessConfig(input_size=(32, 32), resize=False, normalize=mode)
        x = _patch(seed=3)
        by_dataset = build_eval_transform(pre)(x)["image"]
        by_predictor = Preprocessor(pre).normalize(x[None])[0]  # tiles go through this path
        assert torch.allclose(by_dataset, by_predictor, atol=1e-5), mode
        mask = torch.zeros(32, 32)
        mask[12:16, 12:16] = 1
        out = build_train_transform(AugmentConfig.preset("flips"), pre)(x, mask=mask, seed=1)
        assert out["mask"].sum() == 16  # masks are left alone


def test_mode_round_trips_and_bad_mode_is_named() -> None:
    pre = PreprocessConfig(normalize="standardize")
    assert PreprocessConfig.from_dict(pre.to_dict()) == pre
    older = {k: v for k, v in pre.to_dict().items() if k != "normalize"}
    assert PreprocessConfig.from_dict(older).normalize == "fixed"  # older models load as they were trained
    with pytest.raises(ConfigError, match="normalize 'whiten' is unknown; use one of fixed, standardize"):
        PreprocessConfig(normalize="whiten")
