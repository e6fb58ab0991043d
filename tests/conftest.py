"""Shared test setup: `helpers` importable from every test, and the real-data folder fixture."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent

# `from helpers.images import ...` works whatever pytest's import mode (tests have no __init__ files).
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def _shared_data_path() -> Path:
    env = os.environ.get("FLAWSCOPE_DATA")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real datasets folder (env FLAWSCOPE_DATA, default <repo>/../shared/datasets); skips when absent."""
    path = _shared_data_path()
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path}; set FLAWSCOPE_DATA to the datasets folder")
    return path
