"""Image classifiers: a backbone and ONE fully connected head (GAP + FC by default, so CAM works)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError
from flawscope.models.backbones import Backbone, create_backbone
from flawscope.models.base import FlawModel, ModelConfig
from flawscope.models.heads import CAMHead, FCHead
from flawscope.models.pretrained import LoadReport, load_backbone_weights, parse_pretrained
from flawscope.models.registry import register_model

HeadKind = Literal["gap", "fc"]
# Class names that mean "no defect": every other class counts as defective unless the caller says otherwise.
_OK_NAMES = {"ok", "good", "normal", "free", "none", "no_defect", "background", "mt_free"}


def resolve_io(
    num_classes: int | None,
    in_chans: int | None,
    preprocess: PreprocessConfig | None,
    class_names: Sequence[str] | None,
) -> tuple[int, int, PreprocessConfig, tuple[str, ...]]:
    """Reconcile num_classes / class_names and in_chans / preprocess; raise a ConfigError naming any conflict.

    Returns:
        (num_classes, in_chans, preprocess, class_names).
    """
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        if num_classes is not None and num_classes != len(class_names):
            raise ConfigError(
                f"num_classes={num_classes} but class_names has {len(class_names)} names "
                f"{list(class_names)}; "
                "give one of them or make them agree"
            )
        num_classes = len(class_names)
    num_classes = 2 if num_classes is None else int(num_classes)
    if num_classes < 2:
        raise ConfigError(
            f"num_classes must be at least 2 (2 = binary, one sigmoid logit), got {num_classes}"
        )
    if class_names is None:
        class_names = (
            ("ok", "defect") if num_classes == 2 else tuple(f"class_{i}" for i in range(num_classes))
        )
    if preprocess is None:
        preprocess = PreprocessConfig(in_chans=in_chans or 1)
    elif in_chans is not None and in_chans != preprocess.in_chans:
        raise ConfigError(
            f"in_chans={in_chans} but preprocess.in_chans={preprocess.in_chans}; "
            "drop in_chans or make them agree"
        )
    return num_classes, preprocess.in_chans, preprocess, class_names


def make_config(
    name: str,
    task: str,
    preprocess: PreprocessConfig,
    class_names: tuple[str, ...],
    build_kwargs: dict[str, Any],
    defective_classes: Sequence[str] | None = None,
) -> ModelConfig:
    """The ModelConfig a builder attaches to its model (build_kwargs rebuild it via `build_from_config`)."""
    if defective_classes is None:
        ok = [c for c in class_names if c.lower() in _OK_NAMES]
        defective = tuple(c for c in class_names if c not in ok) if ok else tuple(class_names)
    else:
        defective = tuple(defective_classes)
        unknown = [c for c in defective if c not in class_names]
        if unknown:
            raise ConfigError(f"defective_classes {unknown} are not among class_names {list(class_names)}")
    return ModelConfig(
        name=name,
        task=task,
        preprocess=preprocess,
        class_names=class_names,
        defective_classes=defective,
        build_kwargs=dict(build_kwargs),
    )


def load_file_weights(model: nn.Module, kind: str, value: str | Path | None) -> LoadReport | None:
    """Load a local pretrained file into the model's backbone (hub weights were loaded at build time)."""
    if kind != "file":
        return None
    report = load_backbone_weights(model, value)  # type: ignore[arg-type]
    model.pretrained_report = report  # kept so callers / CLI can show what was loaded and folded
    return report


class Classifier(FlawModel):
    """Backbone + one FC head.

    Args:
        backbone: feature extractor (see `flawscope.models.backbones`).
        num_outputs: 1 for binary (sigmoid), else the number of classes.
        head: "gap" = global average pooling + FC (CAM-ready; CNN default), "fc" = flatten the feature map of
            the configured input size + FC (fixed input size). Token backbones (ViT) pool their own way.
        input_size: the input size a "fc" head is sized for.
        drop_rate: dropout before the FC layer.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_outputs: int,
        head: HeadKind = "gap",
        input_size: tuple[int, int] = (224, 224),
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone.module
        self.kind = backbone.kind
        self.num_features = backbone.num_features
        if head not in ("gap", "fc"):
            raise ConfigError(
                f"head must be 'gap' (GAP + FC, CAM-ready) or 'fc' (flatten + FC), got {head!r}"
            )
        if backbone.kind == "tokens" or head == "fc":
            in_features = backbone.num_features
            if backbone.kind == "map":
                in_features = self._flat_size(backbone.module, input_size)
            self.head: nn.Module = FCHead(in_features, num_outputs, drop_rate)
        else:
            self.head = CAMHead(backbone.num_features, num_outputs, drop_rate)

    @staticmethod
    def _flat_size(module: nn.Module, input_size: tuple[int, int]) -> int:
        # Pooling rounding differs between networks: measure the feature map instead of computing it.
        first = next(module.parameters())
        in_chans = next(m for m in module.modules() if isinstance(m, nn.Conv2d)).in_channels
        was_training = module.training
        module.eval()
        with torch.no_grad():
            out = module.forward_features(torch.zeros(1, in_chans, *input_size, device=first.device))
        module.train(was_training)
        return int(out[0].numel())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output: feature map (B, C, h, w), or tokens (B, N, C) for ViTs."""
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits from backbone output; `pre_logits=True` gives the pooled embedding (B, D) instead."""
        if self.kind == "tokens":
            x = self.backbone.forward_head(x, pre_logits=True)
        return self.head(x, pre_logits=pre_logits)

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"logits": (B, K), "features": pooled embedding (B, D)}."""
        pooled = self.forward_head(self.forward_features(x), pre_logits=True)
        return {"logits": self.head.fc(self.head.drop(pooled)), "features": pooled}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def cam_target_layers(self) -> list[nn.Module]:
        """The module(s) whose output is the last feature map (pytorch-grad-cam's `target_layers`)."""
        return [last_feature_module(self.backbone)]


def last_feature_module(module: nn.Module) -> nn.Module:
    info = getattr(module, "feature_info", None)
    if isinstance(info, list) and info and "module" in info[-1]:
        return module.get_submodule(info[-1]["module"])
    if hasattr(module, "features"):
        return module.features[-1]
    return list(module.children())[-1]


def args_doc(fn: Any, skip: Sequence[str] = ()) -> str:
    """The "Args:" section of a builder's docstring without the `skip` entries (for registered wrappers)."""
    import inspect

    doc = inspect.getdoc(fn) or ""
    lines = doc[doc.find("Args:") :].splitlines() if "Args:" in doc else []
    kept, drop = [], False
    for line in lines:
        if line.startswith("    ") and not line.startswith("        "):
            drop = line.strip().split(":", 1)[0] in skip
        if not drop:
            kept.append(line)
    return "\n".join(kept)


def build_classifier(
    name: str,
    backbone_name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    class_names: Sequence[str] | None = None,
    head: HeadKind | None = None,
    drop_rate: float = 0.0,
    defective_classes: Sequence[str] | None = None,
    **kwargs: Any,
) -> Classifier:
    """Build a classifier around a named backbone (what every registered classifier calls).

    Args:
        name: registry name stored in the config.
        backbone_name: "small_cnn", "squeezenet1_1[_reduced]" or a timm model name.
        num_classes: 2 (default) = binary with one sigmoid logit; K > 2 = K softmax logits.
        in_chans: 1 (default, grayscale) or 3; taken from `preprocess` when omitted.
        pretrained: None, a local weights file, "hub", or "timm:<model>.<tag>".
        preprocess: the model's input contract (size, normalisation); default 1-channel 224 px.
        class_names: class names (their number sets num_classes).
        head: "gap" (CAM-ready, default for CNNs) or "fc".
        drop_rate: dropout before the FC layer.
        defective_classes: which classes count as defective (default: all but ok/good/normal ones).
        **kwargs: extra backbone options (timm create_model kwargs).
    """
    num_classes, in_chans, preprocess, class_names = resolve_io(
        num_classes, in_chans, preprocess, class_names
    )
    kind, value = parse_pretrained(pretrained)
    backbone = create_backbone(
        backbone_name,
        in_chans,
        hub=value if kind == "hub" else None,
        img_size=preprocess.input_size,
        **kwargs,
    )
    head = head or ("fc" if backbone.kind == "tokens" else "gap")
    model = Classifier(
        backbone, 1 if num_classes == 2 else num_classes, head, preprocess.input_size, drop_rate
    )
    build_kwargs = dict(num_classes=num_classes, in_chans=in_chans, head=head, drop_rate=drop_rate, **kwargs)
    if name == "timm_classifier":
        build_kwargs["backbone"] = backbone_name
    model.config = make_config(name, "classify", preprocess, class_names, build_kwargs, defective_classes)
    load_file_weights(model, kind, value)
    return model


def _register(name: str, backbone_name: str, description: str) -> None:
    def builder(
        num_classes: int | None = None,
        in_chans: int | None = None,
        pretrained: str | Path | None = None,
        preprocess: PreprocessConfig | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Classifier:
        if "backbone" in kwargs:
            raise ConfigError(
                f"{name} has a fixed backbone; use timm_classifier (backbone=NAME) or a bilinear model "
                "to choose one"
            )
        return build_classifier(
            name, backbone_name, num_classes, in_chans, pretrained, preprocess, class_names, **kwargs
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{description}\n\n{args_doc(build_classifier, skip=('name', 'backbone_name'))}"
    register_model(name, task="classify", description=description)(builder)


_register("vgg16", "vgg16", "VGG16 convolutional layers (timm, ~14.7M) + GAP + FC")
_register("vgg16_bn", "vgg16_bn", "VGG16 with batch norm (timm) + GAP + FC")
_register("resnet18", "resnet18", "ResNet-18 (timm, ~11.2M) + GAP + FC")
_register("resnet34", "resnet34", "ResNet-34 (timm) + GAP + FC")
_register("resnet50", "resnet50", "ResNet-50 (timm) + GAP + FC")
# legacy_xception is the port of Chollet's original Keras Xception; xception41 is DeepLab's "aligned" variant.
_register("xception", "legacy_xception", "Xception as in Chollet 2017 (timm legacy_xception) + GAP + FC")
_register("squeezenet1_1", "squeezenet1_1", "SqueezeNet 1.1 (torchvision) + GAP + FC")
_register(
    "squeezenet1_1_reduced",
    "squeezenet1_1_reduced",
    "SqueezeNet 1.1 without its last three Fire modules + GAP + FC",
)
_register("small_cnn", "small_cnn", "Small 8-conv CNN for 32-224 px patches, fast on CPU (~0.3M)")
_register("vit_tiny", "vit_tiny_patch16_224", "ViT-Tiny/16 (timm), img_size from preprocess.input_size + FC")


@register_model(
    "timm_classifier", task="classify", description="Any timm model as backbone (backbone=NAME) + FC"
)
def timm_classifier(
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    class_names: Sequence[str] | None = None,
    backbone: str = "resnet18",
    **kwargs: Any,
) -> Classifier:
    """Any timm model as backbone (backbone=NAME, e.g. "efficientnet_b0", "convnext_atto") + FC.

    Takes the arguments of `build_classifier`.
    """
    return build_classifier(
        "timm_classifier", backbone, num_classes, in_chans, pretrained, preprocess, class_names, **kwargs
    )
