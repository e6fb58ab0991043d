"""Errors a user can act on: each names the file, field or value and a way out."""

from __future__ import annotations

from pathlib import Path


class FlawscopeError(ValueError):
    """Base class for user-facing errors (bad input, bad configuration)."""


class ImageReadError(FlawscopeError):
    """An image file cannot be decoded."""

    def __init__(self, path: str | Path, reason: str, hint: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        msg = f"cannot read image {path}: {reason}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class DatasetError(FlawscopeError):
    """A dataset folder, manifest or annotation is malformed."""


class ConfigError(FlawscopeError):
    """A configuration value or option is invalid."""
