"""The data set `fedcl run` uses when given none: the simulated nine-device network, made on first use.

Nothing is downloaded: the simulator ships with fedcl and is deterministic, so every machine builds
the same files. They live in ``$FEDCL_DATA_HOME`` (default ``~/.cache/fedcl``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_SEED = 0


def default_data_dir() -> Path:
    home = os.environ.get("FEDCL_DATA_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fedcl"
    return Path(home) / f"simulated-seed{DEFAULT_SEED}"


def ensure_default_data(progress=None) -> Path:
    """The default data folder, simulating it first if it is not there yet."""
    target = default_data_dir()
    if not (target / "SIMULATION.json").is_file():
        simulate_into(target, seed=DEFAULT_SEED, progress=progress)
    return target


def simulate_into(target: Path, seed: int = DEFAULT_SEED, scale: float = 1.0, progress=None) -> None:
    """Simulate the network into ``target``, replacing what is there (a folder of files; an earlier simulation)."""
    from fedcl.traffic import simulate_network

    target.parent.mkdir(parents=True, exist_ok=True)
    # Simulate beside the target and rename: an interrupted run never leaves half a data set.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        simulate_network(Path(tmp) / "data", seed=seed, scale=scale, progress=progress)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(Path(tmp) / "data", target)
