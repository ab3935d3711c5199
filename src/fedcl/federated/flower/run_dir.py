"""A Flower run's folder on the SuperLink machine: which runs may write it, and how a refusal reads.

Light on purpose (no torch, no flwr): ``fedcl flower run`` checks a local ``--out`` with it before
submitting, and the ServerApp checks again where ``--out`` really is. The rules are those of every run
directory (:func:`fedcl.rundir.check_run_dir`).
"""

from __future__ import annotations

from fedcl.rundir import CHECKPOINT_FILE, RESUMABLE_CHANGES, check_run_dir

__all__ = ["CHECKPOINT_FILE", "REFUSED", "RESUMABLE_CHANGES", "check_run_dir"]

#: How a run's status details begin when the ServerApp refused its settings (not a bug of fedcl).
REFUSED = "fedcl refused the run: "
