"""One registry and one factory for every model (timm's register_model / create_model)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flawscope.errors import ConfigError, did_you_mean

Task = Literal["classify", "segment"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model builder."""

    name: str
    task: Task
    fn: Callable[..., Any]
    description: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, task: Task = "classify", description: str = "") -> Callable:
    """Decorator: register a builder `fn(num_classes, in_chans, pretrained, **kw) -> FlawModel` by name."""

    def decorator(fn: Callable) -> Callable:
        if name in _MODELS:
            raise ConfigError(f"model name {name!r} is already registered by {_MODELS[name].fn.__module__}")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        _MODELS[name] = ModelEntry(name, task, fn, doc)
        return fn

    return decorator


def _ensure_registered() -> None:
    import flawscope.models  # noqa: F401  (registers every built-in model on import)


def list_models(pattern: str = "*", task: Task | None = None) -> list[str]:
    """Registered model names matching a glob pattern, optionally of one task."""
    _ensure_registered()
    return sorted(
        n for n, e in _MODELS.items() if fnmatch.fnmatch(n, pattern) and (task is None or e.task == task)
    )


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of a model, or an error listing valid names."""
    _ensure_registered()
    if name not in _MODELS:
        hint = did_you_mean(name, _MODELS)
        raise ConfigError(f"unknown model {name!r}.{hint} Valid models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model by name; kwargs go to its builder (num_classes, in_chans, pretrained, ...)."""
    return get_model_entry(name).fn(**kwargs)
