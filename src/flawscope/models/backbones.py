"""Feature extractors: timm models without their classifier, torchvision SqueezeNet, and a small CPU CNN.

Every backbone exposes `forward_features(x)`; `Backbone.kind` says whether that returns a feature map
(B, C, h, w) or ViT-style tokens (B, N, C) that the model's own `forward_head(..., pre_logits=True)` pools.
State-dict keys stay those of the timm / torchvision model, so their checkpoints load without renaming.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from flawscope.errors import ConfigError

_SIZED_FAMILIES = ("vision_transformer", "deit", "beit", "eva", "swin", "xcit", "cait", "vit")


@dataclass
class Backbone:
    """A feature extractor and what a head needs to know about it."""

    module: nn.Module
    num_features: int
    kind: Literal["map", "tokens"] = "map"


class SmallCNN(nn.Module):
    """A small ad-hoc CNN for 32–224 px grayscale patches (~0.3M parameters, fast on CPU).

    Four blocks of two 3×3 conv-BN-ReLU layers; the first three end in 2×2 max-pooling (stride 8 in total).
    """

    def __init__(self, in_chans: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_chans
        for i, w in enumerate(widths):
            for _ in range(2):
                layers += [
                    nn.Conv2d(prev, w, 3, padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                ]
                prev = w
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.num_features = prev

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


class SqueezeNetFeatures(nn.Module):
    """torchvision SqueezeNet 1.1's convolutional part (keys "features.N" as in torchvision checkpoints).

    Args:
        in_chans: input channels; 1 replaces the first conv (random init) or folds pretrained RGB kernels.
        reduced: drop the last three Fire modules (384 output channels instead of 512; ~4× fewer parameters).
        pretrained: load torchvision's ImageNet weights (downloads; never in tests).
    """

    def __init__(self, in_chans: int = 1, reduced: bool = False, pretrained: bool = False) -> None:
        super().__init__()
        import torchvision
        from timm.models import adapt_input_conv

        weights = torchvision.models.SqueezeNet1_1_Weights.DEFAULT if pretrained else None
        features = torchvision.models.squeezenet1_1(weights=weights).features
        if in_chans != 3:
            old = features[0]
            new = nn.Conv2d(in_chans, old.out_channels, old.kernel_size, old.stride, old.padding)
            if pretrained:
                with torch.no_grad():
                    new.weight.copy_(adapt_input_conv(in_chans, old.weight))
                    new.bias.copy_(old.bias)
            features[0] = new
        if reduced:
            features = features[:10]  # modules 10, 11, 12 are the last three Fire modules
        self.features = features
        self.num_features = features[-1].expand1x1.out_channels + features[-1].expand3x3.out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def create_timm_backbone(
    name: str, in_chans: int = 1, hub: str | None = None, img_size: tuple[int, int] | None = None, **kwargs
) -> Backbone:
    """A timm model without its classifier.

    Args:
        name: timm model name (see `timm.list_models()`).
        in_chans: input channels; with hub weights timm folds the RGB stem to one channel.
        hub: None for random init, "" for timm's default pretrained tag, "<name>.<tag>" for a specific one.
        img_size: input size for models that need it (ViT); ignored by CNNs.
        **kwargs: passed to `timm.create_model` (drop_path_rate, output_stride, ...).
    """
    import timm

    from flawscope.models.pretrained import check_hub_name

    if not timm.is_model(name):
        raise ConfigError(
            f"backbone {name!r} is not a timm model; see timm.list_models('{name[:4]}*') for valid names"
        )
    # Transformers fix their position embeddings to one input size; CNNs take any size and no img_size option.
    module_name = timm.models.model_entrypoint(name).__module__
    if img_size is not None and any(t in module_name for t in _SIZED_FAMILIES):
        kwargs["img_size"] = tuple(img_size)
    build_name = check_hub_name(hub, name) if hub is not None else name
    kw = dict(num_classes=0, in_chans=in_chans, **kwargs)
    if hub is None and name.startswith("vgg"):
        # timm's VGG builds fc6/fc7 as a 102M-parameter ConvMlp that a flawscope head never uses: build on the
        # meta device, drop it, then allocate and initialise only the convolutions (saves ~2 s and 400 MB).
        with torch.device("meta"):
            model = timm.create_model(build_name, **kw)
        model.pre_logits = nn.Identity()
        model.to_empty(device=torch.get_default_device())
        model._initialize_weights()
        for module in model.modules():
            # to_empty leaves buffers as uninitialised memory: batch-norm statistics must start at 0 / 1.
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
    else:
        model = timm.create_model(build_name, pretrained=hub is not None, **kw)
        if hasattr(model, "pre_logits") and name.startswith("vgg"):
            model.pre_logits = nn.Identity()
    kind: Literal["map", "tokens"] = "tokens" if hasattr(model, "patch_embed") else "map"
    return Backbone(model, int(model.num_features), kind)


STEM_STRIDES = (1, 2, 4)


def set_stem_stride(module: nn.Module, name: str, stem_stride: int) -> None:
    """Make a ResNet-style stem (conv1 stride 2 + 3×3 max-pool stride 2) downsample by 4, 2 or 1.

    A 32 px patch leaves ResNet-18's last stage a 1×1 map with the standard stem (stride 32 in all); stem
    stride 1 keeps it 4×4, as CIFAR ResNets do. Weights are unchanged, so pre-trained checkpoints load.
    """
    if stem_stride not in STEM_STRIDES:
        raise ConfigError(f"stem_stride {stem_stride!r} is not valid; use one of "
                          f"{', '.join(map(str, STEM_STRIDES))}")
    conv, pool = getattr(module, "conv1", None), getattr(module, "maxpool", None)
    if not isinstance(conv, nn.Conv2d) or pool is None:
        raise ConfigError(f"stem_stride applies to ResNet-style backbones (conv1 + maxpool); {name!r} has no "
                          "such stem; leave stem_stride out, or use a resnet*/resnext*/seresnet* backbone")
    if stem_stride <= 2:
        module.maxpool = nn.Identity()
    if stem_stride == 1:
        conv.stride = (1, 1)


def create_backbone(
    name: str, in_chans: int = 1, hub: str | None = None, img_size: tuple[int, int] | None = None,
    stem_stride: int | None = None, **kwargs
) -> Backbone:
    """A backbone by name: "small_cnn", "squeezenet1_1", "squeezenet1_1_reduced", or any timm model name.

    Args:
        name: backbone name.
        in_chans: input channels (1 for radiographs).
        hub: None = random init, "" = default online weights, "<timm name>.<tag>" = specific timm weights.
        img_size: model input size (needed by ViTs).
        stem_stride: ResNet-style stems only: 4 (standard), 2 (no max-pool) or 1 (no max-pool, stride-1
            first conv) for small inputs; None = the model's own stem.
        **kwargs: extra timm options.
    """
    backbone = _create_backbone(name, in_chans, hub, img_size, **kwargs)
    if stem_stride is not None and int(stem_stride) != 4:
        set_stem_stride(backbone.module, name, int(stem_stride))
    return backbone


def _create_backbone(
    name: str, in_chans: int, hub: str | None, img_size: tuple[int, int] | None, **kwargs
) -> Backbone:
    if name == "small_cnn":
        if hub is not None:
            raise ConfigError(
                "small_cnn has no pretrained weights online; use pretrained=None or a local file"
            )
        module = SmallCNN(in_chans, **kwargs)
        return Backbone(module, module.num_features)
    if name in ("squeezenet1_1", "squeezenet1_1_reduced"):
        if hub:
            raise ConfigError(f"{name} takes pretrained='hub' (torchvision weights), not 'timm:{hub}'")
        module = SqueezeNetFeatures(in_chans, reduced=name.endswith("reduced"), pretrained=hub is not None)
        return Backbone(module, module.num_features)
    return create_timm_backbone(name, in_chans, hub=hub, img_size=img_size, **kwargs)
