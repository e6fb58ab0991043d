"""Model files: save a trained FlawModel and rebuild it from a run's model.pt or Lightning checkpoint.

Only the plain model and its `ModelConfig` are needed (no training code): the config is stored in the file
(model.pt) or in the checkpoint's hyperparameters (.ckpt), and the model is rebuilt through the registry.
"""

from __future__ import annotations

from pathlib import Path

import torch

from flawscope.errors import FlawscopeError
from flawscope.models.base import FlawModel, ModelConfig

MODEL_FILE_FORMAT = "flawscope-model/1"


class CheckpointError(FlawscopeError):
    """A weights file is missing, unreadable, or does not fit the model."""


def _torch_load(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Lightning checkpoints hold only tensors and plain values here, so the safe loader suffices.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint we wrote"
        raise CheckpointError(f"cannot read checkpoint {path}: {err}; pass a .ckpt from a flawscope run's "
                              "checkpoints/ folder or its model.pt") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a flawscope checkpoint (it holds a {type(ckpt).__name__})")
    return ckpt


def checkpoint_model_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored in a Lightning checkpoint or model.pt, without building the model."""
    path = Path(path)
    ckpt = _torch_load(path)
    return _config_of(ckpt, path)


def _config_of(ckpt: dict, path: Path) -> ModelConfig:
    if ckpt.get("format") == MODEL_FILE_FORMAT:
        return ModelConfig.from_dict(ckpt["config"])
    hp = ckpt.get("hyper_parameters") or {}
    if "model_config" not in hp:
        raise CheckpointError(f"checkpoint {path} has no flawscope model config; it was not written by "
                              "`flawscope train` (pass a .ckpt from a run's checkpoints/ folder or model.pt)")
    return ModelConfig.from_dict(hp["model_config"])


def build_model(config: ModelConfig) -> FlawModel:
    """A fresh, randomly initialised model from a ModelConfig, through the registry (no downloads)."""
    from flawscope.models.registry import create_model

    kwargs = dict(config.build_kwargs)
    kwargs.update(num_classes=len(config.class_names), in_chans=config.preprocess.in_chans,
                  preprocess=config.preprocess, class_names=tuple(config.class_names))
    kwargs["pretrained"] = None  # the checkpoint brings the weights
    model = create_model(config.name, **kwargs)
    model.config = config  # threshold, reject band and defective classes as trained
    return model


def load_model_from_checkpoint(path: str | Path, expect: ModelConfig | None = None) -> FlawModel:
    """Rebuild a trained FlawModel from a run's Lightning checkpoint (.ckpt) or its model.pt.

    Args:
        path: checkpoint file.
        expect: when given, the checkpoint must hold the same model name, task and class names.

    Raises:
        CheckpointError: unreadable file, not a flawscope checkpoint, or weights that do not fit the model.
    """
    path = Path(path)
    ckpt = _torch_load(path)
    config = _config_of(ckpt, path)
    if expect is not None:
        check_compatible(config, expect, path)
    model = build_model(config)
    if ckpt.get("format") == MODEL_FILE_FORMAT:
        state = ckpt["state_dict"]
    else:
        state = {k.removeprefix("model."): v for k, v in ckpt.get("state_dict", {}).items()
                 if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path} does not fit model {config.name!r} built from its own config "
            f"({'; '.join(first[:3])}); was it written by another flawscope version?"
        ) from None
    model.eval()
    return model


def check_compatible(found: ModelConfig, expect: ModelConfig, path: str | Path) -> None:
    """Raise CheckpointError when a checkpoint's model differs from the one being trained or loaded."""
    for key in ("name", "task", "class_names"):
        a, b = (getattr(c, key) for c in (found, expect))
        a, b = (tuple(v) if isinstance(v, list | tuple) else v for v in (a, b))
        if a != b:
            raise CheckpointError(
                f"checkpoint {path} holds a model with {key}={a!r}, but this run has {key}={b!r}; "
                "resume only with the same model, task and dataset classes (or start a new run)"
            )
    if found.build_kwargs != expect.build_kwargs:
        raise CheckpointError(
            f"checkpoint {path} was built with {found.build_kwargs}, but this run uses "
            f"{expect.build_kwargs}; resume with the same backbone and model options"
        )


def save_model(model: FlawModel, path: str | Path) -> Path:
    """Save the plain model (state + ModelConfig) as model.pt; `load_model_from_checkpoint` reads it back."""
    path = Path(path)
    torch.save({"format": MODEL_FILE_FORMAT, "config": model.config.to_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)
    return path
