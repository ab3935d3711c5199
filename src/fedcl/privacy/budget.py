"""A node's own privacy budget: what it agrees to spend, whatever a server asks (record-level DP).

Without a budget a node takes ε, the rounds and the batch size from the server, so a careless or curious
server decides what the node's rows are worth. A node started with ``max-epsilon`` and ``privacy-ledger``
in its node config (``fedcl flower supernode --max-epsilon E --privacy-ledger FILE``) trains only when:

- the run is record-level DP (a finite ``dp_epsilon``, ``dp_level`` "record"): node-level DP adds its noise
  on the server, which then sees the node's update in the clear;
- on the run's first message, the ε the run is calibrated for fits in what the ledger has left: the
  node reserves all of it then (a run's noise is calibrated for all its rounds), so runs add up by basic
  composition (Σ ε, Σ δ), a resumed or repeated run being charged again;
- on later messages, the run's DP settings (ε, δ, clip, rounds, batch size, local epochs and steps) are
  those reserved, and the round is one of the plan's rounds that this node has not trained yet: a server
  that asks for more releases than it planned, or the same round twice, is refused.

It also refuses federated evaluation, whose metrics no ε counts. The ledger is JSON lines, appended
and fsync'ed under a lock before the node trains, so a crash never loses a charge.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path

from fedcl.config import FedCLConfig
from fedcl.errors import InputError

#: The settings a run's DP plan depends on (besides the node's own row count): fixed for the whole run.
PLAN_KEYS = ("dp_epsilon", "dp_delta", "dp_clip", "rounds", "batch_size", "local_epochs", "local_steps")


class BudgetRefused(InputError):
    """The node declines the server's request: it would spend outside the node's budget."""


class PrivacyLedger:
    """The record of what one node has reserved and released, against its budget ``max_epsilon``."""

    def __init__(self, path: str | Path, max_epsilon: float) -> None:
        if not (max_epsilon > 0 and math.isfinite(max_epsilon)):
            raise InputError(f"max-epsilon must be positive and finite, got {max_epsilon}")
        self.path, self.max_epsilon = Path(path), float(max_epsilon)

    def charge(self, run_id: int, config: FedCLConfig, round_: int) -> None:
        """Record that this node trains ``round_`` of run ``run_id``; :class:`BudgetRefused` if it may not."""
        if not config.differential_privacy:
            raise BudgetRefused(f"run {run_id} asks for {self._mode(config)}; this node trains only under "
                                f"record-level differential privacy within its budget (max-epsilon {self.max_epsilon:g})")
        plan = {key: getattr(config, key) for key in PLAN_KEYS}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as ledger:
            fcntl.flock(ledger, fcntl.LOCK_EX)  # ClientApp processes of one node may overlap
            ledger.seek(0)
            entries = _entries(ledger.read(), self.path)
            runs = {e["run"]: e for e in entries if "plan" in e}
            trained = {(e["run"], e["round"]) for e in entries if "round" in e}
            if not 1 <= round_ <= config.rounds:
                raise BudgetRefused(f"run {run_id} asks for round {round_} of a plan of {config.rounds} rounds")
            if run_id not in runs:
                spent = sum(e["plan"]["dp_epsilon"] for e in runs.values())
                if spent + config.dp_epsilon > self.max_epsilon * (1 + 1e-9):
                    raise BudgetRefused(f"run {run_id} asks for ε = {config.dp_epsilon:g}, but this node has "
                                        f"{max(self.max_epsilon - spent, 0):g} of its {self.max_epsilon:g} left "
                                        f"({self.path})")
                self._append(ledger, {"run": run_id, "plan": plan})
            elif runs[run_id]["plan"] != plan:
                changed = sorted(k for k in PLAN_KEYS if runs[run_id]["plan"][k] != plan[k])
                raise BudgetRefused(f"run {run_id} changed its DP settings mid-run ({', '.join(changed)}): refused")
            if (run_id, round_) in trained:
                raise BudgetRefused(f"run {run_id} asks for round {round_} again: this node trained it already")
            self._append(ledger, {"run": run_id, "round": round_})

    @staticmethod
    def _mode(config: FedCLConfig) -> str:
        return "no differential privacy" if not math.isfinite(config.dp_epsilon) else "node-level DP"

    @staticmethod
    def _append(ledger, entry: dict) -> None:
        ledger.write(json.dumps(entry) + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())

    def spent(self) -> float:
        """The ε reserved so far, over every run (basic composition)."""
        if not self.path.is_file():
            return 0.0
        entries = _entries(self.path.read_text(encoding="utf-8"), self.path)
        return sum(e["plan"]["dp_epsilon"] for e in entries if "plan" in e)


def _entries(text: str, path: Path) -> list[dict]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entries += [json.loads(line)] if line.strip() else []
        except json.JSONDecodeError as bad:
            raise InputError(f"{path}: not a privacy ledger (line {number}: {bad.msg}); the node trains no more "
                             "until it is mended or moved aside") from None
    return entries


def node_ledger(node_config: dict) -> PrivacyLedger | None:
    """The node's ledger from its node config (``max-epsilon``, ``privacy-ledger``), or None without a budget."""
    if "max-epsilon" not in node_config:
        return None
    if not node_config.get("privacy-ledger"):
        raise InputError("node config has max-epsilon but no privacy-ledger: give the file that records what the "
                         "node spends (fedcl flower supernode --privacy-ledger FILE)")
    try:
        limit = float(node_config["max-epsilon"])
    except ValueError:
        raise InputError(f"node config max-epsilon={node_config['max-epsilon']!r} is not a number") from None
    return PrivacyLedger(str(node_config["privacy-ledger"]), limit)
