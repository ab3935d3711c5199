"""An in-process run's checkpoint: the federation after every round, then every node detector as it is fitted.

``fedcl train --resume`` goes on from it to the model an uninterrupted run writes. The federation's state
is one file, rewritten (atomically) each round; each node's detector is a file of its own in a folder beside
it, so a run of hundreds of nodes does not rewrite them all each time one is added.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from fedcl.federated import FederationState
from fedcl.rundir import CHECKPOINT_FILE, CHECKPOINT_NODES

__all__ = ["RunCheckpoint"]


def _save(obj: dict, path: Path) -> None:
    # Write then rename: a crash mid-write never leaves a half file behind.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _tensor(a) -> torch.Tensor:
    return torch.from_numpy(a) if a is not None else torch.empty(0)


def _array(t: torch.Tensor):
    return t.numpy() if t.numel() else None


class RunCheckpoint:
    """The checkpoint in run directory ``out``: ``state`` (None before the first round) and ``nodes``, the
    fitted detectors' states by node name."""

    def __init__(self, out: Path, state: FederationState | None = None, nodes: dict[str, dict] | None = None):
        self.out, self.state, self.nodes = Path(out), state, dict(nodes or {})

    @classmethod
    def load(cls, out: str | Path) -> "RunCheckpoint | None":
        """The checkpoint an interrupted run left in ``out``, or None."""
        out = Path(out)
        if not (out / CHECKPOINT_FILE).is_file():
            return None
        saved = torch.load(out / CHECKPOINT_FILE, weights_only=True)
        held = saved.get("held")
        state = FederationState(int(saved["round"]), [t.numpy() for t in saved["arrays"]], _array(saved["reference"]),
                                None if held is None else [t.numpy() for t in held],
                                {name: t.numpy() for name, t in saved.get("residuals", {}).items()},
                                saved.get("dp_generator"))
        nodes = {}
        for path in sorted((out / CHECKPOINT_NODES).glob("*.pt")):
            node = torch.load(path, weights_only=True)
            nodes[node["name"]] = node["state"]
        return cls(out, state, nodes)

    @staticmethod
    def progress(out: str | Path, rounds: int) -> tuple[int, int]:
        """(rounds finished, node detectors fitted) that a run resumed from ``out`` with ``rounds`` starts from."""
        out = Path(out)
        if not (out / CHECKPOINT_FILE).is_file():
            return 0, 0
        done = int(torch.load(out / CHECKPOINT_FILE, weights_only=True)["round"])
        return done, len(list((out / CHECKPOINT_NODES).glob("*.pt"))) if done == rounds else 0

    def save_federation(self, state: FederationState) -> None:
        self.state = state
        _save({"round": state.round, "arrays": [torch.from_numpy(a) for a in state.arrays],
               "reference": _tensor(state.reference),
               "held": None if state.held is None else [torch.from_numpy(a) for a in state.held],
               "residuals": {name: torch.from_numpy(r) for name, r in state.residuals.items()},
               "dp_generator": state.dp_generator}, self.out / CHECKPOINT_FILE)

    def save_node(self, name: str, detector_state: dict) -> None:
        self.nodes[name] = detector_state
        folder = self.out / CHECKPOINT_NODES
        folder.mkdir(exist_ok=True)
        _save({"name": name, "state": detector_state}, folder / f"{len(self.nodes):05d}.pt")

    def remove(self) -> None:
        """Once the model is saved, the checkpoint has done its work."""
        shutil.rmtree(self.out / CHECKPOINT_NODES, ignore_errors=True)
        (self.out / CHECKPOINT_FILE).unlink(missing_ok=True)
