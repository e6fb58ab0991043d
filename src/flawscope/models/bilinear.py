"""Bilinear CNNs: B-CNN (Lin et al. 2015) and the spatial-attention SA-BCNN, with a CBAM variant.

One shared backbone gives a feature map X (c × h × w). SA-BCNN refines it with a spatial attention map Ms,
F = X ⊗ Ms, then bilinear pooling Φ(F) = F Fᵀ / hw → signed sqrt → L2 normalisation → one FC layer.

The models pool with `fused_bilinear_pool`, which computes exactly `heads.bilinear_pool` (the readable
reference) with a hand-written backward: the reference's autograd chain allocates about 25 fresh (B, c²)
tensors per training step (262,144 values per image for a 512-channel backbone), and on CPU each such
allocation page-faults, which made SA-BCNN several times slower than its backbone alone (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError
from flawscope.models.backbones import Backbone, create_backbone
from flawscope.models.base import FlawModel
from flawscope.models.classifier import (
    args_doc,
    last_feature_module,
    load_file_weights,
    make_config,
    resolve_io,
)
from flawscope.models.heads import CBAMSpatial, FCHead, SpatialAttentionDS, bilinear_pool
from flawscope.models.pretrained import parse_pretrained
from flawscope.models.registry import register_model

Attention = Literal["sa", "cbam"] | None

# Rows of (B, c²) processed at a time: ~1 MiB of float32 stays in L2 cache and the only temporaries are
# chunk-sized, which the allocator recycles instead of mapping fresh pages for each one.
_CHUNK_ELEMENTS = 1 << 18


def _row_chunks(b: int, row_size: int) -> list[slice]:
    rows = max(1, _CHUNK_ELEMENTS // row_size)
    return [slice(r, min(r + rows, b)) for r in range(0, b, rows)]


class _BilinearPool(torch.autograd.Function):
    """`heads.bilinear_pool` with one (B, c²) allocation forward (the output) and one backward (dΦ)."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, eps: float) -> torch.Tensor:
        b, c, h, w = features.shape
        hw = h * w
        f = features.reshape(b, c, hw)
        z = f.new_empty(b, c * c)
        norms = f.new_empty(b, 1)
        chunks = _row_chunks(b, c * c)
        scratch = f.new_empty(chunks[0].stop * c * c)  # one chunk-sized temporary, reused
        for rows in chunks:
            part = z[rows]
            torch.bmm(f[rows], f[rows].transpose(1, 2), out=part.view(-1, c, c))
            if hw != 1:  # dividing by 1 is exact: skip the pass (a 1×1 map: ResNet-18 on 32 px patches)
                part.div_(hw)  # Φ = F Fᵀ / hw
            sign = torch.sign(part, out=scratch[: part.numel()].view_as(part))
            part.abs_().add_(eps).sqrt_().mul_(sign)  # signed square root
            norm = torch.linalg.vector_norm(part, dim=1, keepdim=True).clamp_min_(1e-12)  # as F.normalize
            part.div_(norm)
            norms[rows] = norm
        ctx.save_for_backward(f, z, norms)
        ctx.shape = features.shape
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_z: torch.Tensor) -> tuple[torch.Tensor, None]:
        f, z, norms = ctx.saved_tensors
        b, c, hw = f.shape
        grad_z = grad_z.contiguous()
        grad_phi = torch.empty_like(z)
        grad_f = torch.empty_like(f)
        chunks = _row_chunks(b, c * c)
        scratch = z.new_empty(chunks[0].stop * c * c)
        for rows in chunks:
            zc, gz, gp, n = z[rows], grad_z[rows], grad_phi[rows], norms[rows]
            # L2 normalisation z = s / n: ds = (dz - z (z·dz)) / n.
            dot = torch.bmm(zc.unsqueeze(1), gz.unsqueeze(2)).view(-1, 1)
            torch.addcmul(gz, zc, dot, value=-1, out=gp)
            # Signed sqrt s = sign(Φ) √(|Φ| + eps): dΦ = ds / (2 |s|) where Φ ≠ 0 and 0 where Φ = 0
            # (autograd's sign/abs rules), with |s| = n |z|, so dΦ = (dz - z (z·dz)) / (2 n² |z|). A non-zero
            # |s| is at least √eps, so an infinite reciprocal marks exactly the entries with Φ = 0; NaN stays.
            scale = torch.abs(zc, out=scratch[: zc.numel()].view_as(zc))
            scale.mul_(2 * n * n).reciprocal_().nan_to_num_(nan=math.nan, posinf=0.0)
            gp.mul_(scale)
            # Φ = F Fᵀ / hw: dF = (dΦ + dΦᵀ) F / hw.
            gm, fc = gp.view(-1, c, c), f[rows]
            out = grad_f[rows]
            torch.bmm(gm, fc, out=out)
            out.baddbmm_(gm.transpose(1, 2), fc)
            if hw != 1:
                out.div_(hw)
        return grad_f.reshape(ctx.shape), None


def fused_bilinear_pool(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`heads.bilinear_pool` (Φ = F Fᵀ / hw → signed sqrt → L2 normalisation), equal values, fast backward.

    Holds one (B, c²) tensor for backward instead of the reference's six; differentiable once (no
    double backward). The fused path is for eager float32/float64 on CPU, where each fresh (B, c²) tensor
    costs page faults; on GPUs (whose caching allocator recycles memory), under autocast, tracing or ONNX
    export it is the reference itself.

    Args:
        features: feature map (B, c, h, w).
        eps: keeps the square root's gradient finite at 0.

    Returns:
        (B, c*c) unit-length descriptors.
    """
    fused = (
        features.device.type == "cpu"
        and features.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
        and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())  # exporters: the plain formula
    )
    return _BilinearPool.apply(features, eps) if fused else bilinear_pool(features, eps)


class BilinearCNN(FlawModel):
    """Fully shared bilinear CNN with optional spatial attention before pooling.

    Args:
        backbone: a feature-map backbone (CNN).
        num_outputs: 1 for binary (sigmoid), else the number of classes.
        attention: None (B-CNN), "sa" (SA-BCNN's depthwise-separable attention) or "cbam".
        reduce_dim: optional 1×1 conv to this many channels before pooling (c² features: 512 → 262,144;
            e.g. 128 → 16,384 keeps CPU training fast). None keeps the backbone's channels (the paper).
        sa_reduction: channel reduction of the SA module's first 1×1 conv.
        drop_rate: dropout before the FC layer.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_outputs: int,
        attention: Attention = None,
        reduce_dim: int | None = None,
        sa_reduction: int = 8,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if backbone.kind != "map":
            raise ConfigError(
                "bilinear models need a CNN backbone that returns a feature map; this backbone returns "
                "transformer tokens: choose e.g. backbone='resnet18' or 'vgg16'"
            )
        self.backbone = backbone.module
        channels = backbone.num_features
        if reduce_dim is not None:
            if reduce_dim < 1:
                raise ConfigError(f"reduce_dim must be a positive channel count or None, got {reduce_dim}")
            self.reduce: nn.Module = nn.Sequential(
                nn.Conv2d(channels, reduce_dim, 1, bias=False),
                nn.BatchNorm2d(reduce_dim),
                nn.ReLU(inplace=True),
            )
            channels = reduce_dim
        else:
            self.reduce = nn.Identity()
        if attention == "sa":
            self.attention: nn.Module | None = SpatialAttentionDS(channels, sa_reduction)
        elif attention == "cbam":
            self.attention = CBAMSpatial()
        elif attention is None:
            self.attention = None
        else:
            raise ConfigError(f"attention must be None, 'sa' or 'cbam', got {attention!r}")
        self.num_features = channels * channels
        self.head = FCHead(self.num_features, num_outputs, drop_rate)

    def _maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats = self.reduce(self.backbone.forward_features(x))
        if self.attention is None:
            return feats, None
        ms = self.attention(feats)
        return feats * ms, ms

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The (attention-refined) feature map F (B, c, h, w) that bilinear pooling sees."""
        return self._maps(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Bilinear pooling + FC; `pre_logits=True` gives the unit-length bilinear vector (B, c²)."""
        return self.head(fused_bilinear_pool(x), pre_logits=pre_logits)

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"logits", "features" (B, c²) unit-length bilinear vector, "attention" (B, 1, h, w) if any}."""
        refined, ms = self._maps(x)
        z = fused_bilinear_pool(refined)
        out = {"logits": self.head(z), "features": z}
        if ms is not None:
            out["attention"] = ms
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def cam_target_layers(self) -> list[nn.Module]:
        """The backbone's last feature module (pytorch-grad-cam's `target_layers`)."""
        return [last_feature_module(self.backbone)]


def build_bilinear(
    name: str,
    attention: Attention,
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    class_names: Sequence[str] | None = None,
    backbone: str = "resnet18",
    reduce_dim: int | None = None,
    sa_reduction: int = 8,
    drop_rate: float = 0.0,
    defective_classes: Sequence[str] | None = None,
    **kwargs: Any,
) -> BilinearCNN:
    """Build a bilinear model.

    Args:
        name: registry name stored in the config.
        attention: None, "sa" or "cbam".
        num_classes: 2 (default) = binary, one sigmoid logit.
        in_chans: 1 (default) or 3; taken from `preprocess` when omitted.
        pretrained: None, a local weights file (loaded into the backbone), "hub" or "timm:<model>.<tag>".
        preprocess: the model's input contract.
        class_names: class names (their number sets num_classes).
        backbone: any timm CNN name, "small_cnn" or "squeezenet1_1"; "vgg16" is the SA-BCNN paper's choice,
            "resnet18" the CPU-friendly default.
        reduce_dim: optional 1×1 channel reduction before bilinear pooling.
        sa_reduction: channel reduction inside the SA attention module.
        drop_rate: dropout before the FC layer.
        defective_classes: which classes count as defective.
        **kwargs: extra timm options for the backbone.
    """
    num_classes, in_chans, preprocess, class_names = resolve_io(
        num_classes, in_chans, preprocess, class_names
    )
    kind, value = parse_pretrained(pretrained)
    bb = create_backbone(backbone, in_chans, hub=value if kind == "hub" else None, **kwargs)
    model = BilinearCNN(
        bb, 1 if num_classes == 2 else num_classes, attention, reduce_dim, sa_reduction, drop_rate
    )
    build_kwargs = dict(
        num_classes=num_classes,
        in_chans=in_chans,
        backbone=backbone,
        reduce_dim=reduce_dim,
        drop_rate=drop_rate,
        **kwargs,
    )
    if attention == "sa":
        build_kwargs["sa_reduction"] = sa_reduction
    model.config = make_config(name, "classify", preprocess, class_names, build_kwargs, defective_classes)
    load_file_weights(model, kind, value)
    return model


@register_model("bcnn", task="classify", description="Bilinear CNN (shared backbone, default resnet18)")
def bcnn(
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    class_names: Sequence[str] | None = None,
    **kwargs: Any,
) -> BilinearCNN:
    """Bilinear CNN (shared backbone, default resnet18). See `build_bilinear` for the arguments."""
    return build_bilinear("bcnn", None, num_classes, in_chans, pretrained, preprocess, class_names, **kwargs)


@register_model(
    "sa_bcnn", task="classify", description="Spatial-attention bilinear CNN (SA-BCNN), default resnet18"
)
def sa_bcnn(
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    class_names: Sequence[str] | None = None,
    **kwargs: Any,
) -> BilinearCNN:
    """SA-BCNN: depthwise-separable spatial attention before bilinear pooling. See `build_bilinear`."""
    return build_bilinear(
        "sa_bcnn", "sa", num_classes, in_chans, pretrained, preprocess, class_names, **kwargs
    )


@register_model("sa_bcnn_cbam", task="classify", description="Bilinear CNN with CBAM spatial attention")
def sa_bcnn_cbam(
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    class_names: Sequence[str] | None = None,
    **kwargs: Any,
) -> BilinearCNN:
    """Bilinear CNN with CBAM spatial attention (max/mean pool → 7×7 conv) before pooling."""
    return build_bilinear(
        "sa_bcnn_cbam", "cbam", num_classes, in_chans, pretrained, preprocess, class_names, **kwargs
    )


for _fn in (bcnn, sa_bcnn, sa_bcnn_cbam):
    _fn.__doc__ = f"{_fn.__doc__}\n\n{args_doc(build_bilinear, skip=('name', 'attention'))}"
