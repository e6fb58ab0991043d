"""The architecture rule beyond import-linter's layers (pyproject.toml): no private names across packages."""

from __future__ import annotations

import ast
from pathlib import Path

import flawscope

SRC = Path(flawscope.__file__).parent


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])  # flawscope.<package>


def test_no_private_name_is_imported_from_another_package() -> None:
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        own = _package("flawscope." + ".".join(path.relative_to(SRC).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flawscope"):
                if _package(node.module) == own:
                    continue
                offences += [f"{path.relative_to(SRC)}:{node.lineno} imports {node.module}.{a.name}"
                             for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offences, "private names used across packages:\n" + "\n".join(offences)
