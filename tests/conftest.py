"""Shared fixtures: where the real N-BaIoT rows live, and small slices of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedcl.experiments._runner import one_torch_thread as _one_thread

_CANDIDATES = [
    os.environ.get("FEDCL_SHARED_DATA", ""),
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nbaiot",
    "/work/shared/data/nbaiot",
]


def _find_nbaiot() -> Path | None:
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "fedmse-iid").is_dir():
            return Path(candidate)
    return None


NBAIOT = _find_nbaiot()
needs_nbaiot = pytest.mark.skipif(NBAIOT is None, reason="real N-BaIoT rows (../shared/data/nbaiot) not found")


def _head(src: Path, dst: Path, rows: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open() as f:
        dst.write_text("".join(line for _, line in zip(range(rows), f)))


@pytest.fixture(scope="session")
def fedmse_slice(tmp_path_factory) -> Path:
    """Three fedmse-iid clients, cut to their first rows (client layout, real values)."""
    root = tmp_path_factory.mktemp("fedmse-slice")
    sizes = {"normal": 500, "test_normal": 150, "abnormal": 300}
    for client in ("Client-1", "Client-2", "Client-3"):
        for part, rows in sizes.items():
            _head(NBAIOT / "fedmse-iid" / client / part / "data.csv", root / client / part / "data.csv", rows)
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train faster on one thread, and do not stall when other jobs hold the CPUs."""
    with _one_thread():
        yield
