"""What every flawscope model carries and exposes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from flawscope.data.config import PreprocessConfig


@dataclass(frozen=True)
class ModelConfig:
    """The data contract a model carries (timm's pretrained_cfg): it travels into checkpoints and exports.

    Immutable: a changed copy is made with `dataclasses.replace` (training does so once, when it stores the
    threshold chosen on val). Inference takes the threshold and band from a `DecisionPolicy`, which defaults
    to these stored values, so one loaded model can serve several policies at once.

    Attributes:
        name: registry name the model was built from.
        task: "classify" or "segment".
        preprocess: how a file becomes this model's input.
        class_names: output classes; binary models use ("ok", "defect") and one sigmoid logit.
        defective_classes: class names that count as defective (the positive class for inspection metrics).
        threshold: decision threshold on the defect probability chosen on validation (0.5 until then).
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


def export_output_names(task: str) -> tuple[str, ...]:
    """Names of `forward_export`'s outputs: what a decision needs, for every backend and export."""
    return ("logits", "mask_logits") if task == "segment" else ("logits",)


class FlawModel(nn.Module):
    """Base of every flawscope model.

    `forward(x)` returns a plain logits tensor so standard tools (grad-cam, captum, flop counter) work;
    `forward_outputs(x)` returns a dict with "logits" and, where the model has them, "attention" (B,1,h,w)
    and "mask_logits" (B,1,H,W); `forward_export(x)` returns the tuple named by `export_output_names` (a
    segmenter's image logit included), which the inference backends and ONNX export run. Classifiers split
    into `forward_features` / `forward_head` (timm's seam).
    """

    config: ModelConfig

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All outputs of one forward pass."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_outputs(x)["logits"]

    def forward_export(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The outputs a decision needs, as a tuple (traceable: no Python-side use of the batch size)."""
        outputs = self.forward_outputs(x)
        return tuple(outputs[name] for name in export_output_names(self.config.task))
