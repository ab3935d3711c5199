"""Shared fixtures: where the real N-BaIoT rows live, and small slices of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fedcl.experiments._runner import one_torch_thread as _one_thread

# A slice of real N-BaIoT rows kept in the repo (see nbaiot/README.md): the suite needs nothing beside the clone.
NBAIOT = Path(__file__).resolve().parent / "nbaiot"


@pytest.fixture(scope="session")
def fedmse_slice(tmp_path_factory) -> Path:
    """Three fedmse-iid clients, cut to their first rows (client layout, real values; 400/100/200 rows)."""
    root = tmp_path_factory.mktemp("fedmse-slice")
    shutil.copytree(NBAIOT / "fedmse-iid", root, dirs_exist_ok=True)  # a copy: tests may add to it
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train faster on one thread, and do not stall when other jobs hold the CPUs."""
    with _one_thread():
        yield
