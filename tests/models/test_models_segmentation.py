"""Segmenters: output sizes (with internal padding), image-level logits, structure of the small U-Net."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flawscope.errors import ConfigError
from flawscope.models import create_model
from flawscope.models.heads import topk_mean


@pytest.mark.parametrize(
    "name, kwargs, size",
    [
        ("unet_small", {}, (32, 32)),
        ("unet_small", {}, (40, 36)),  # not a multiple of 16: padded inside, cropped back
        ("unet", {"encoder": "resnet18"}, (40, 44)),  # not a multiple of 32
        ("deeplabv3plus", {"encoder": "resnet18"}, (36, 32)),  # not a multiple of 16
    ],
)
def test_mask_has_the_input_size(name: str, kwargs: dict, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        mask = model(x)
        out = model.forward_outputs(x)
    assert mask.shape == (2, 1, *size)
    torch.testing.assert_close(out["mask_logits"], mask)
    assert out["logits"].shape == (2, 1)
    assert torch.isfinite(mask).all()


def test_unet_small_structure() -> None:
    model = create_model("unet_small")
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(pools) == 1 and pools[0].kernel_size == 2  # one pooling module applied four times
    assert [block[0].out_channels for block in model.encoder] == [16, 32, 64, 128, 256]
    assert [(u.in_channels, u.out_channels, u.stride) for u in ups] == [
        (256, 128, (2, 2)), (128, 64, (2, 2)), (64, 32, (2, 2)), (32, 16, (2, 2))
    ]  # fmt: skip
    assert model.divisor == 16
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.encoder[0])


def test_image_head_modes() -> None:
    x = torch.randn(2, 1, 32, 32)
    torch.manual_seed(0)
    topk = create_model("unet_small", image_head="topk").eval()
    out = topk.forward_outputs(x)
    assert "head_logits" not in out and topk.cls_head is None
    k = round(0.01 * 32 * 32)  # 1 % of the pixels
    expected = out["mask_logits"].flatten(1).topk(k, dim=1).values.mean(dim=1, keepdim=True)
    torch.testing.assert_close(out["logits"], expected)

    both = create_model("unet_small", image_head="both").eval()
    out = both.forward_outputs(x)
    torch.testing.assert_close(out["logits"], (out["topk_logits"] + out["head_logits"]) / 2)

    head = create_model("unet", image_head="head", image_pool="max").eval()
    out = head.forward_outputs(x)
    torch.testing.assert_close(out["logits"], out["head_logits"])


def test_max_pool_of_mask_logits() -> None:
    mask = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(topk_mean(mask, 0.0), mask.amax(dim=(1, 2, 3)).unsqueeze(1))


def test_segmenter_errors() -> None:
    with pytest.raises(ConfigError, match="num_classes must be 2"):
        create_model("unet_small", num_classes=3)
    with pytest.raises(ConfigError, match="image_head"):
        create_model("unet_small", image_head="avg")
    with pytest.raises(ConfigError, match="not a segmentation_models_pytorch encoder"):
        create_model("unet", encoder="resnet19")
    with pytest.raises(ConfigError, match="no online weights"):
        create_model("unet_small", pretrained="hub")
