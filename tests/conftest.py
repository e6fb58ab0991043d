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


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use tiny models, which run fastest on one intra-op thread; it also keeps 2-process tests and
    a shared CI machine from oversubscribing the cores (OpenMP spin-waits can cost 10-100x)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
