"""Heads and pooling blocks shared by the classifiers, the bilinear models and the segmenters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FCHead(nn.Module):
    """Flatten + dropout + one fully connected layer (for pooled vectors or fixed-size feature maps)."""

    def __init__(self, in_features: int, num_outputs: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_outputs)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return x if pre_logits else self.fc(self.drop(x))


class CAMHead(nn.Module):
    """Global average pooling + one fully connected layer: the head class activation maps (CAM) need.

    As the FC layer directly follows GAP, `cam(features)` gives each class's map exactly (Zhou et al. 2016).
    """

    def __init__(self, in_features: int, num_outputs: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_outputs)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(self.drop(x))

    def cam(self, features: torch.Tensor) -> torch.Tensor:
        """Class activation maps (B, K, h, w) of features (B, C, h, w); their spatial mean is the logits."""
        return torch.einsum("kc,bchw->bkhw", self.fc.weight, features) + self.fc.bias[None, :, None, None]


def bilinear_pool(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Bilinear (second-order) pooling of a feature map, as in Lin et al.'s B-CNN.

    Φ(F) = F Fᵀ / hw for F of shape (c, hw), flattened to c² values, then signed sqrt and L2 normalisation.

    Args:
        features: feature map (B, c, h, w).
        eps: keeps the square root's gradient finite at 0.

    Returns:
        (B, c*c) unit-length descriptors.
    """
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    phi = torch.bmm(f, f.transpose(1, 2)) / (h * w)
    phi = phi.reshape(b, c * c)
    phi = torch.sign(phi) * torch.sqrt(phi.abs() + eps)
    return F.normalize(phi, dim=1)


class SpatialAttentionDS(nn.Module):
    """SA-BCNN's spatial attention: 1×1 conv → depthwise 3×3 + pointwise → 1×1 conv to one map → sigmoid.

    Args:
        in_chans: channels of the feature map X.
        reduction: the first 1×1 conv keeps max(8, in_chans // reduction) channels.
    """

    def __init__(self, in_chans: int, reduction: int = 8) -> None:
        super().__init__()
        mid = max(8, in_chans // reduction)
        self.reduce = nn.Sequential(
            nn.Conv2d(in_chans, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True)
        )
        self.depthwise = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.pointwise = nn.Sequential(nn.Conv2d(mid, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True))
        self.to_map = nn.Conv2d(mid, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention map Ms (B, 1, h, w) in [0, 1]."""
        return torch.sigmoid(self.to_map(self.pointwise(self.depthwise(self.reduce(x)))))


class CBAMSpatial(nn.Module):
    """CBAM's spatial attention (Woo et al. 2018): channel max- and mean-pool → 7×7 conv → sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention map Ms (B, 1, h, w) in [0, 1]."""
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


def topk_mean(mask_logits: torch.Tensor, ratio: float = 0.01) -> torch.Tensor:
    """Image-level logit (B, 1): mean of the top `ratio` fraction of pixel logits (ratio 0 → the max).

    k = max(1, round(ratio × pixels)). Under tracing (ONNX export) k is computed in the graph from the
    tensor itself (sort + rank mask), so an exported model keeps its image logit at any input size; eager
    code takes the faster topk. Both give the same value.
    """
    flat = mask_logits.flatten(1)
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        ordered = flat.sort(dim=1, descending=True).values
        ones = torch.ones_like(ordered)
        k = torch.clamp(torch.round(ones.sum(1, keepdim=True) * ratio), min=1.0)
        keep = (ones.cumsum(1) - 1) < k
        return (ordered * keep).sum(1, keepdim=True) / k
    k = max(1, round(ratio * flat.shape[1]))
    return flat.topk(k, dim=1).values.mean(dim=1, keepdim=True)
