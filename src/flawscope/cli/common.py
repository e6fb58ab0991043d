"""Small helpers shared by the command modules."""

from __future__ import annotations

from typing import Any


def format_value(value: Any) -> str:
    """A metric for a terminal table: 4 significant digits, "n/a" for a missing value."""
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
