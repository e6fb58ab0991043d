"""The backend seam: what runs the network. The Predictor only sees this contract.

A backend takes a batch of normalised model inputs at the model's input size (B, C, h, w) and returns the
model's export outputs by name (`flawscope.models.base.export_output_names`): "logits" (B, K) for every
model, plus "mask_logits" (B, 1, h, w) for segmenters. The Torch backend runs the plain model's
`forward_export`; an ONNX Runtime backend runs the exported graph of the same forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from flawscope.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from flawscope.models.base import FlawModel, ModelConfig


@runtime_checkable
class Backend(Protocol):
    """Runs a model on batches of normalised inputs."""

    config: ModelConfig
    model_id: str

    def run(self, batch: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Export outputs by name for a (B, C, h, w) float32 batch."""
        ...


def resolve_device(device: str) -> torch.device:
    """"cpu", "cuda", "cuda:N" or "auto" (a GPU when there is one) as a torch device."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not understood; use cpu, cuda, cuda:N or auto") from None


class TorchBackend:
    """Runs a plain FlawModel in eval mode under torch.inference_mode.

    Args:
        model: the plain model (not the LightningModule).
        device: "cpu", "cuda", "cuda:N" or "auto".
        model_id: identifies the model in prediction records; default its registry name.
    """

    def __init__(self, model: FlawModel, device: str = "cpu", model_id: str | None = None) -> None:
        from flawscope.models.base import export_output_names

        self.model = model
        self.device = resolve_device(device)
        self.config = model.config
        self.model_id = model_id or model.config.name
        self.output_names = export_output_names(model.config.task)

    def __repr__(self) -> str:
        return f"TorchBackend({self.model_id!r}, device={self.device})"

    def run(self, batch: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Export outputs by name for a (B, C, h, w) float32 batch, as float32 numpy arrays."""
        import torch

        x = torch.as_tensor(batch, dtype=torch.float32)
        # Set each call: training code may have flipped the shared model back to train mode.
        self.model.to(self.device).eval()
        with torch.inference_mode():
            outputs = self.model.forward_export(x.to(self.device))
        return {name: out.float().cpu().numpy() for name, out in zip(self.output_names, outputs, strict=True)}

    def embed(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """Pooled features (B, D) of a batch: the classifier's pre-logits (`forward_outputs()["features"]`).

        Raises:
            ConfigError: a model without pooled features (segmenters).
        """
        import torch

        x = torch.as_tensor(batch, dtype=torch.float32)
        self.model.to(self.device).eval()
        with torch.inference_mode():
            outputs = self.model.forward_outputs(x.to(self.device))
        if "features" not in outputs:
            raise ConfigError(f"model {self.config.name!r} returns no pooled features (its outputs: "
                              f"{sorted(outputs)}); use a classification model")
        return outputs["features"].float().reshape(x.shape[0], -1).cpu().numpy()
