"""Errors a user can act on: each names the file, field or value and a way out."""

from __future__ import annotations

from collections.abc import Iterable
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


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """" Did you mean a, b?" for the choices closest to a misspelt name, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), list(choices), n=n)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
