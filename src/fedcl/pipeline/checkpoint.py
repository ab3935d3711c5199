"""An in-process run's checkpoint: the federation after every round, then every node detector as it is fitted.

``fedcl train --resume`` goes on from it to the model an uninterrupted run writes. The federation's state
is one file, rewritten (atomically) each round; each node's detector is a file of its own in a folder beside
it, so a run of hundreds of nodes does not rewrite them all each time one is added. Its file names are not
a Flower run's (``checkpoint.pt``): neither kind of run takes the other's checkpoint for its own.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fedcl.data import NodeSplit
from fedcl.errors import ConfigError
from fedcl.federated import FederationState
from fedcl.rundir import CHECKPOINT_NODES, TRAINING_CHECKPOINT

__all__ = ["RunCheckpoint", "atomic_save", "data_fingerprint"]


def atomic_save(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then renamed: a crash mid-write never leaves a half file behind."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def data_fingerprint(splits: Sequence[NodeSplit]) -> dict[str, str]:
    """Each node's training rows and columns as a digest, by node name: what a resumed run must train on."""
    return {s.name: s.training_digest() for s in splits}


def _tensor(a: np.ndarray | None) -> torch.Tensor:
    return torch.from_numpy(a) if a is not None else torch.empty(0)


def _load(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError):
        raise ConfigError(f"{path}: not a readable checkpoint (cut short, or not fedcl's); start a new run in "
                          "another --out") from None


class RunCheckpoint:
    """The checkpoint in run directory ``out`` of a run on data ``fingerprint`` (:func:`data_fingerprint`):
    ``state`` (None before the first round) and ``nodes``, the fitted detectors' states by node name."""

    def __init__(self, out: Path, fingerprint: dict[str, str], state: FederationState | None = None,
                 nodes: dict[str, dict] | None = None):
        self.out, self.fingerprint, self.state, self.nodes = Path(out), fingerprint, state, dict(nodes or {})

    @classmethod
    def load(cls, out: str | Path, fingerprint: dict[str, str]) -> "RunCheckpoint | None":
        """The checkpoint an interrupted run left in ``out`` (None if none), once it is sure to be of a run
        on the same data; ConfigError otherwise."""
        out = Path(out)
        if not (out / TRAINING_CHECKPOINT).is_file():
            return None
        saved = _load(out / TRAINING_CHECKPOINT)
        if saved["data"] != fingerprint:
            differ = sorted(set(saved["data"]) ^ set(fingerprint)) or [
                name for name in fingerprint if saved["data"][name] != fingerprint[name]]
            raise ConfigError(f"{out}: the data are not those the checkpointed run trained on (node(s) "
                              f"{', '.join(differ)} differ): resume on the same rows, or start a new run in another --out")
        held = saved["held"]
        state = FederationState(int(saved["round"]), [t.numpy() for t in saved["arrays"]],
                                saved["reference"].numpy() if saved["reference"].numel() else None,
                                None if held is None else [t.numpy() for t in held],
                                {name: t.numpy() for name, t in saved["residuals"].items()}, saved["dp_generator"])
        nodes = {}
        for path in sorted((out / CHECKPOINT_NODES).glob("*.pt")):
            node = _load(path)
            nodes[node["name"]] = node["state"]
        return cls(out, fingerprint, state, nodes)

    def progress(self, rounds: int) -> tuple[int, int]:
        """(rounds finished, node detectors fitted) that a run of ``rounds`` goes on from."""
        done = self.state.round if self.state is not None else 0
        return done, len(self.nodes) if done == rounds else 0

    def save_federation(self, state: FederationState) -> None:
        atomic_save({"round": state.round, "arrays": [torch.from_numpy(a) for a in state.arrays],
                     "reference": _tensor(state.reference),
                     "held": None if state.held is None else [torch.from_numpy(a) for a in state.held],
                     "residuals": {name: torch.from_numpy(r) for name, r in state.residuals.items()},
                     # Node-level DP's secret generator: the checkpoint is as secret as the server's memory.
                     "dp_generator": state.dp_generator, "data": self.fingerprint}, self.out / TRAINING_CHECKPOINT)
        self.state = state  # after the write: progress() says what is on disk, even when a signal cut it short

    def save_node(self, name: str, detector_state: dict) -> None:
        folder = self.out / CHECKPOINT_NODES
        folder.mkdir(exist_ok=True)
        atomic_save({"name": name, "state": detector_state}, folder / f"{len(self.nodes) + 1:05d}.pt")
        self.nodes[name] = detector_state

    def clear_nodes(self) -> None:
        self.nodes.clear()
        shutil.rmtree(self.out / CHECKPOINT_NODES, ignore_errors=True)

    def remove(self) -> None:
        """Once the model is saved, the checkpoint has done its work."""
        self.clear_nodes()
        for name in (TRAINING_CHECKPOINT, TRAINING_CHECKPOINT + ".tmp"):
            (self.out / name).unlink(missing_ok=True)
