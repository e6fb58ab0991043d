"""Models: importing this package registers every built-in model.

Build any model by name with `create_model(name, num_classes=2, in_chans=1, pretrained=None, **kw)`;
`list_models()` names them all; `flawscope.models.checkpoint.build_model(config)` rebuilds a model from its
saved ModelConfig.
"""

from __future__ import annotations

from typing import Any

from flawscope.models import bilinear, classifier, segmentation  # noqa: F401  (register the builders)
from flawscope.models.base import FlawModel, ModelConfig
from flawscope.models.checkpoint import CheckpointError
from flawscope.models.pretrained import LoadReport, load_backbone_weights
from flawscope.models.registry import create_model, get_model_entry, list_models

__all__ = [
    "CheckpointError",
    "FlawModel",
    "LoadReport",
    "ModelConfig",
    "count_parameters",
    "create_model",
    "get_model_entry",
    "list_models",
    "load_backbone_weights",
]


def count_parameters(name: str, **kwargs: Any) -> int:
    """Parameters of a registered model, counted on the meta device (no memory, no weights, ~instant)."""
    import torch

    with torch.device("meta"):
        model = create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())
