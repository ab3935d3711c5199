"""Where Flower's programs are, and the environment every Flower process of fedcl runs in."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["base_env", "flower_binary"]


def flower_binary(name: str) -> str:
    """Path of the Flower entry point ``name`` (``flwr``, ``flower-superlink``, ...) installed next to
    this interpreter: the right flwr version even when the virtual environment is not activated.
    Falls back to the bare name (looked up on PATH)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else name


def base_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Flower process of a fedcl deployment (SuperLink, SuperNode, flwr).

    Telemetry off; runtime dependency installation off (the SuperNodes and the SuperLink's
    ServerApp executor otherwise ``uv sync`` the app for each run); this interpreter's ``bin``
    first on PATH, because the SuperLink and SuperNodes start ``flower-superexec`` by name; their
    ``flower-superexec`` looks for new tasks every 0.2 s instead of every second (a ServerApp or
    ClientApp process starts that much sooner, for a local query a second or so).
    """
    env = dict(os.environ if environ is None else environ)
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env
