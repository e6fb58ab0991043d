"""Segmenters: a fast small U-Net and segmentation_models_pytorch's U-Net / DeepLabV3+ (1 mask channel).

`forward(x)` returns mask logits (B, 1, H, W) of the input's size (inputs are padded internally to the
network's divisor and cropped back). `forward_outputs(x)` also gives an image-level defect logit (B, 1) for
mixed supervision: the top-k mean (or max) of the mask logits, a small head on the deepest features, or both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError
from flawscope.models.base import FlawModel
from flawscope.models.classifier import load_file_weights, make_config, resolve_io
from flawscope.models.heads import CAMHead, topk_mean
from flawscope.models.pretrained import (
    check_hub_name,
    load_backbone_weights,
    parse_pretrained,
    timm_hub_state_dict,
)
from flawscope.models.registry import register_model

ImageHead = Literal["topk", "head", "both"]
ImagePool = Literal["topk", "max"]


class Segmenter(FlawModel):
    """Shared padding and image-level logit logic; subclasses implement `_segment(x) -> (mask, head_logit)`.

    Args:
        divisor: input sides must be multiples of this (padded internally).
        image_head: "topk" = pooled from mask logits, "head" = classification head on the deepest features,
            "both" = their mean (each is also returned, for separate losses).
        image_pool: "topk" (mean of the top `topk_ratio` pixels) or "max".
        topk_ratio: fraction of pixels averaged by "topk" (1 % by default).
    """

    def __init__(
        self,
        divisor: int,
        image_head: ImageHead = "both",
        image_pool: ImagePool = "topk",
        topk_ratio: float = 0.01,
    ) -> None:
        super().__init__()
        if image_head not in ("topk", "head", "both"):
            raise ConfigError(f"image_head must be 'topk', 'head' or 'both', got {image_head!r}")
        if image_pool not in ("topk", "max"):
            raise ConfigError(f"image_pool must be 'topk' or 'max', got {image_pool!r}")
        if not 0 < topk_ratio <= 1:
            raise ConfigError(f"topk_ratio must be in (0, 1], got {topk_ratio}")
        self.divisor = divisor
        self.image_head = image_head
        self.topk_ratio = topk_ratio if image_pool == "topk" else 0.0

    def _segment(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.divisor, -w % self.divisor
        # Traced (exported) graphs always pad, so the amount stays computed from the input's shape.
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or ph or pw:
            # Replicate the border (not zeros) so padding adds no artificial edge that could look like a flaw.
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"mask_logits" (B,1,H,W), "logits" (B,1), and "topk_logits" / "head_logits" when computed}."""
        h, w = x.shape[-2:]
        mask, head_logit = self._segment(self._pad(x))
        mask = mask[..., :h, :w]
        out = {"mask_logits": mask}
        if self.image_head in ("topk", "both"):
            out["topk_logits"] = topk_mean(mask, self.topk_ratio)
        if head_logit is not None:
            out["head_logits"] = head_logit
        if self.image_head == "both":
            out["logits"] = (out["topk_logits"] + out["head_logits"]) / 2
        else:
            out["logits"] = out["topk_logits"] if self.image_head == "topk" else out["head_logits"]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mask logits (B, 1, H, W)."""
        h, w = x.shape[-2:]
        return self._segment(self._pad(x))[0][..., :h, :w]


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNetSmall(Segmenter):
    """U-Net (Ronneberger et al.): 16-256 channels, four 2×2 max-poolings, transposed-conv upsampling.

    Args:
        in_chans: input channels.
        widths: channels per level, shallow to deep (the last is the bottleneck).
        **kwargs: `Segmenter` options (image_head, image_pool, topk_ratio).
    """

    def __init__(
        self, in_chans: int = 1, widths: Sequence[int] = (16, 32, 64, 128, 256), **kwargs: Any
    ) -> None:
        super().__init__(divisor=2 ** (len(widths) - 1), **kwargs)
        widths = list(widths)
        self.encoder = nn.ModuleList(
            _conv_block(cin, cout) for cin, cout in zip([in_chans, *widths[:-1]], widths, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in reversed(widths[1:]))
        self.decoder = nn.ModuleList(_conv_block(c, c // 2) for c in reversed(widths[1:]))
        self.out = nn.Conv2d(widths[0], 1, 1)
        self.cls_head = CAMHead(widths[-1], 1, 0.2) if self.image_head != "topk" else None

    @property
    def backbone(self) -> nn.Module:
        """The encoder (what `load_backbone_weights` fills)."""
        return self.encoder

    def _segment(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        deep = x
        for up, block, skip in zip(self.up, self.decoder, reversed(skips[:-1]), strict=True):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.out(x), (self.cls_head(deep) if self.cls_head is not None else None)


class SmpSegmenter(Segmenter):
    """A segmentation_models_pytorch model with one mask channel, random or locally loaded encoder weights.

    Args:
        arch: "unet" or "deeplabv3plus".
        encoder: smp encoder name (resnet18/34/50, vgg16_bn, efficientnet-b0, ...).
        in_chans: input channels.
        image_head, image_pool, topk_ratio: see `Segmenter`.
        **smp_kwargs: passed to the smp model (decoder_channels, encoder_output_stride, ...).
    """

    def __init__(
        self,
        arch: str,
        encoder: str = "resnet18",
        in_chans: int = 1,
        image_head: ImageHead = "both",
        image_pool: ImagePool = "topk",
        topk_ratio: float = 0.01,
        **smp_kwargs: Any,
    ) -> None:
        import segmentation_models_pytorch as smp

        super().__init__(1, image_head, image_pool, topk_ratio)
        if encoder not in smp.encoders.get_encoder_names():
            raise ConfigError(
                f"encoder {encoder!r} is not a segmentation_models_pytorch encoder; valid names include "
                "resnet18, resnet34, resnet50, vgg16_bn, efficientnet-b0 "
                "(see smp.encoders.get_encoder_names())"
            )
        aux = dict(classes=1, pooling="avg", dropout=0.2) if image_head != "topk" else None
        cls = {"unet": smp.Unet, "deeplabv3plus": smp.DeepLabV3Plus}[arch]
        # encoder_weights=None always: smp would download; pretrained weights come through `pretrained=`.
        self.net = cls(
            encoder, encoder_weights=None, in_channels=in_chans, classes=1, aux_params=aux, **smp_kwargs
        )
        self.divisor = self.net.encoder.output_stride

    @property
    def backbone(self) -> nn.Module:
        """The smp encoder (keys as in torchvision/timm ResNet and VGG: their checkpoints load as is)."""
        return self.net.encoder

    def _segment(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.net(x)
        return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def _check_binary(num_classes: int, name: str) -> None:
    if num_classes != 2:
        raise ConfigError(
            f"{name} predicts one defect mask (binary); num_classes must be 2, got {num_classes}. "
            "For flaw types use a classifier on the segmented regions"
        )


def _build_segmenter(
    name: str,
    make: Any,
    encoder_name: str | None,
    num_classes: int | None,
    in_chans: int | None,
    pretrained: str | Path | None,
    preprocess: PreprocessConfig | None,
    class_names: Sequence[str] | None,
    defective_classes: Sequence[str] | None,
    build_kwargs: dict[str, Any],
) -> Segmenter:
    num_classes, in_chans, preprocess, class_names = resolve_io(
        num_classes, in_chans, preprocess, class_names
    )
    _check_binary(num_classes, name)
    kind, value = parse_pretrained(pretrained)
    model = make(in_chans)
    model.config = make_config(
        name,
        "segment",
        preprocess,
        class_names,
        dict(num_classes=2, in_chans=in_chans, **build_kwargs),
        defective_classes,
    )
    if kind == "hub":
        if encoder_name is None:
            raise ConfigError(f"{name} has no online weights; use pretrained=None or a local checkpoint file")
        # timm's ResNet / VGG keys equal smp's encoder keys, so timm hub weights initialise the encoder.
        model.pretrained_report = load_backbone_weights(
            model, timm_hub_state_dict(check_hub_name(value, encoder_name))
        )
    load_file_weights(model, kind, value)
    return model


@register_model(
    "unet_small", task="segment", description="Small U-Net 16-256 ch, 4 poolings, fast CPU default"
)
def unet_small(
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    class_names: Sequence[str] | None = None,
    image_head: ImageHead = "both",
    image_pool: ImagePool = "topk",
    topk_ratio: float = 0.01,
    widths: Sequence[int] = (16, 32, 64, 128, 256),
    defective_classes: Sequence[str] | None = None,
) -> UNetSmall:
    """Small U-Net 16-256 ch, 4 poolings, fast CPU default.

    Args:
        num_classes: must be 2 (one defect mask).
        in_chans: 1 (default) or 3.
        pretrained: None or a unet_small checkpoint file (encoder weights).
        preprocess: the model's input contract.
        class_names: ("ok", "defect") by default.
        image_head: "topk", "head" or "both" (image-level logit for mixed supervision).
        image_pool: "topk" or "max" pooling of the mask logits.
        topk_ratio: fraction of pixels for "topk".
        widths: channels per level.
        defective_classes: which classes count as defective.
    """
    kw = dict(image_head=image_head, image_pool=image_pool, topk_ratio=topk_ratio, widths=list(widths))
    return _build_segmenter(
        "unet_small",
        lambda c: UNetSmall(c, **kw),
        None,
        num_classes,
        in_chans,
        pretrained,
        preprocess,
        class_names,
        defective_classes,
        kw,
    )


def _register_smp(name: str, arch: str, description: str) -> None:
    def builder(
        num_classes: int | None = None,
        in_chans: int | None = None,
        pretrained: str | Path | None = None,
        preprocess: PreprocessConfig | None = None,
        class_names: Sequence[str] | None = None,
        encoder: str = "resnet18",
        image_head: ImageHead = "both",
        image_pool: ImagePool = "topk",
        topk_ratio: float = 0.01,
        defective_classes: Sequence[str] | None = None,
        **smp_kwargs: Any,
    ) -> SmpSegmenter:
        kw = dict(encoder=encoder, image_head=image_head, image_pool=image_pool, topk_ratio=topk_ratio)
        return _build_segmenter(
            name,
            lambda c: SmpSegmenter(arch, in_chans=c, **kw, **smp_kwargs),
            encoder,
            num_classes,
            in_chans,
            pretrained,
            preprocess,
            class_names,
            defective_classes,
            {**kw, **smp_kwargs},
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{description}\n\n"
        "Args:\n"
        "    encoder: smp encoder name (resnet18/34/50, vgg16_bn, ...).\n"
        "    pretrained: None, a weights file or a flawscope classification checkpoint of the same backbone\n"
        "        (loaded into the encoder), 'hub' or 'timm:<name>.<tag>'.\n"
        "    image_head, image_pool, topk_ratio: as in unet_small.\n"
        "    **smp_kwargs: passed to the smp model (decoder_channels, encoder_output_stride, ...)."
    )
    register_model(name, task="segment", description=description)(builder)


_register_smp("unet", "unet", "U-Net (segmentation_models_pytorch), encoder= resnet18/34/50, vgg16_bn...")
_register_smp(
    "deeplabv3plus", "deeplabv3plus", "DeepLabV3+ (segmentation_models_pytorch), encoder= resnet18..."
)
