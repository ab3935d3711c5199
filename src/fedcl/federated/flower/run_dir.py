"""A Flower run's folder on the SuperLink machine: which runs may write it, and how a refusal reads.

Light on purpose (no torch, no flwr): ``fedcl flower run`` checks a local ``--out`` with it before
submitting, and the ServerApp checks again where ``--out`` really is.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from fedcl.config import FedCLConfig, load_config
from fedcl.errors import ConfigError
from fedcl.rundir import CHECKPOINT_FILE, CONFIG_FILE

__all__ = ["CHECKPOINT_FILE", "REFUSED", "RESUMABLE_CHANGES", "check_run_dir"]

#: Settings a resumed run may change: node data paths are node-local, and more rounds extend the run.
RESUMABLE_CHANGES = ("data", "rounds")
#: How a run's status details begin when the ServerApp refused its settings (not a bug of fedcl).
REFUSED = "fedcl refused the run: "


def _changed_settings(saved: FedCLConfig, config: FedCLConfig) -> list[str]:
    # Under differential privacy (either level) the noise was calibrated for the saved rounds: more would overspend ε.
    resumable = ("data",) if math.isfinite(saved.dp_epsilon) else RESUMABLE_CHANGES
    return [f"{f.name} {getattr(saved, f.name)!r} -> {getattr(config, f.name)!r}" for f in fields(FedCLConfig)
            if f.name not in resumable and getattr(saved, f.name) != getattr(config, f.name)]


def check_run_dir(out_dir: str | Path, config: FedCLConfig, resume: bool) -> None:
    """Refuse, in one line, a run that would overwrite or wrongly continue the run in ``out_dir``.

    Without ``resume`` ``out_dir`` must hold no checkpoint (an earlier run would be lost); with it,
    it must hold one, written with the same settings (``rounds`` may grow).

    Raises
    ------
    ConfigError
    """
    out = Path(out_dir)
    has_checkpoint = (out / CHECKPOINT_FILE).is_file()
    if not resume and has_checkpoint:
        raise ConfigError(f"{out} holds the checkpoint of an earlier run: add --resume to continue it, "
                          "or give another --out")
    if not resume:
        return
    if not has_checkpoint:
        raise ConfigError(f"{out}: no {CHECKPOINT_FILE} to resume from; leave out --resume to start a new run")
    if not (out / CONFIG_FILE).is_file():
        raise ConfigError(f"{out}: {CHECKPOINT_FILE} without the {CONFIG_FILE} it was written with: cannot "
                          "check the settings; start a new run in another --out")
    # A checkpoint from before min_rows_per_round trained its small nodes local_epochs a round.
    changed = _changed_settings(load_config(out / CONFIG_FILE, base=FedCLConfig(min_rows_per_round=0)), config)
    if changed:
        raise ConfigError(f"{out}: --resume with other settings than the checkpointed run ({'; '.join(changed)}): "
                          "resume with the same settings, or start a new run in another --out")
