"""What every flawscope model carries and exposes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from flawscope.data.config import PreprocessConfig


@dataclass
class ModelConfig:
    """The data contract a model carries (timm's pretrained_cfg): it travels into checkpoints and exports.

    Attributes:
        name: registry name the model was built from.
        task: "classify" or "segment".
        preprocess: how a file becomes this model's input.
        class_names: output classes; binary models use ("ok", "defect") and one sigmoid logit.
        defective_classes: class names that count as defective (the positive class for inspection metrics).
        threshold: decision threshold on the defect probability, chosen on validation.
        reject_band: (low, high) probability band answered "I don't know"; None = never reject.
        build_kwargs: kwargs the registry builder was called with (to rebuild the model from a checkpoint).
    """

    name: str = ""
    task: str = "classify"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    class_names: tuple[str, ...] = ("ok", "defect")
    defective_classes: tuple[str, ...] = ("defect",)
    threshold: float = 0.5
    reject_band: tuple[float, float] | None = None
    build_kwargs: dict = field(default_factory=dict)

    @property
    def num_outputs(self) -> int:
        """1 sigmoid logit for binary problems, else one logit per class."""
        return 1 if len(self.class_names) == 2 else len(self.class_names)

    def to_dict(self) -> dict:
        """Plain dict (YAML/JSON friendly)."""
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        d["class_names"], d["defective_classes"] = list(self.class_names), list(self.defective_classes)
        d["reject_band"] = list(self.reject_band) if self.reject_band else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of to_dict."""
        d = dict(d)
        d["preprocess"] = PreprocessConfig.from_dict(d.get("preprocess", {}))
        d["class_names"] = tuple(d.get("class_names", ("ok", "defect")))
        d["defective_classes"] = tuple(d.get("defective_classes", ("defect",)))
        if d.get("reject_band") is not None:
            d["reject_band"] = tuple(d["reject_band"])
        return cls(**d)


class FlawModel(nn.Module):
    """Base of every flawscope model.

    `forward(x)` returns a plain logits tensor so standard tools (grad-cam, captum, ONNX, flop counter) work;
    `forward_outputs(x)` returns a dict with "logits" and, where the model has them, "attention" (B,1,h,w)
    and "mask_logits" (B,1,H,W). Classifiers split into `forward_features` / `forward_head` (timm's seam).
    """

    config: ModelConfig

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All outputs of one forward pass."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_outputs(x)["logits"]


def image_probabilities(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """How a model's outputs read as probabilities per image.

    Returns:
        (B,) defect probability from one sigmoid logit, (B, K) softmax class probabilities from K logits, or,
        for a segmenter without an image head, (B,) the highest pixel probability of its "mask_logits".
    """
    if "logits" in outputs:
        logits = outputs["logits"]
        if logits.shape[1] == 1:
            return torch.sigmoid(logits[:, 0])
        return torch.softmax(logits, dim=1)
    # A segmenter without an image head: the image is as defective as its most defective pixel.
    return torch.sigmoid(outputs["mask_logits"]).flatten(1).amax(1)
