"""Sliding-window inference: exact identity, conv equivalence, small images, bounded batches, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flawscope.data.tiling import tile_grid
from flawscope.errors import ConfigError
from flawscope.inference.sliding import sliding_window_predict


def _image(c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((c, h, w), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"), [((1, 37, 53), 16, 5), ((3, 64, 41), 16, 8), ((1, 40, 40), 16, 0)]
)
def test_identity_is_exact(shape: tuple[int, int, int], tile: int, overlap: int) -> None:
    x = _image(*shape)
    y = sliding_window_predict(lambda t: t, x, tile, overlap, batch_size=3)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.equal(y, x)


def test_conv_equals_full_image_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 3, padding=1)
    x = _image(1, 45, 70, seed=1)
    with torch.no_grad():
        full = conv(x[None])[0]
    y = sliding_window_predict(conv, x, tile=16, overlap=6, batch_size=4)
    assert y.shape == (2, 45, 70)
    # Tile-edge pixels (zero-padded inside a tile) get zero weight, so the blend matches everywhere.
    torch.testing.assert_close(y, full, atol=1e-5, rtol=0)
    # A plain average lets the wrong tile-edge values through: the smooth window is what makes it match.
    flat = sliding_window_predict(conv, x, tile=16, overlap=6, window="constant")
    assert (flat - full).abs().max() > 1e-3


def test_small_image_is_reflect_padded_and_cropped() -> None:
    x = _image(1, 5, 3)
    seen = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.shape)
        return t * 2

    y = sliding_window_predict(fn, x, tile=16, overlap=4)
    assert seen == [torch.Size([1, 1, 16, 16])]
    torch.testing.assert_close(y, 2 * x)


def test_tiles_processed_in_bounded_batches() -> None:
    x = _image(1, 100, 90)
    sizes = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.shape[0])
        return t.mean(dim=1, keepdim=True)

    sliding_window_predict(fn, x, tile=24, overlap=4, batch_size=5)
    assert max(sizes) <= 5
    assert sum(sizes) == len(tile_grid(100, 90, 24, 4))


def test_errors() -> None:
    x = _image(1, 32, 32)
    with pytest.raises(ConfigError, match="overlap"):
        sliding_window_predict(lambda t: t, x, tile=16, overlap=16)
    with pytest.raises(ConfigError, match="fn returned"):
        sliding_window_predict(lambda t: t[:, :, :8, :8], x, tile=16, overlap=4)
    with pytest.raises(ConfigError, match="float"):
        sliding_window_predict(lambda t: t, (x * 255).to(torch.uint8), tile=16)
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        sliding_window_predict(lambda t: t, x[0], tile=16)


@pytest.mark.real_data
def test_real_weld_radiograph(shared_data) -> None:
    """A 366 x 3512 GDXray weld: tiles cover it exactly and a conv matches the full-image conv."""
    import numpy as np
    from PIL import Image

    path = shared_data / "gdxray-welds" / "W0001" / "W0001_0001.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    x = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255.0)[None]
    assert torch.equal(sliding_window_predict(lambda t: t, x, tile=256, overlap=32, batch_size=4), x)
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    nn.init.constant_(conv.weight, 1 / 9)  # a 3 x 3 mean filter
    with torch.no_grad():
        full = conv(x[None])[0]
    torch.testing.assert_close(sliding_window_predict(conv, x, tile=256, overlap=32), full, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiles_run_on_gpu_output_stays_on_cpu() -> None:
    x = _image(1, 70, 50)
    y = sliding_window_predict(lambda t: t * 2, x, tile=32, overlap=8, device="cuda")
    assert y.device.type == "cpu"
    torch.testing.assert_close(y, 2 * x)
