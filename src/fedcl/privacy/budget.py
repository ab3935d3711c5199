"""A node's own privacy budget: what it agrees to spend, whatever a server asks (record-level DP).

Without a budget a node takes ε, the rounds and the batch size from the server, so a careless or curious
server decides what the node's rows are worth. A node started with ``max-epsilon`` and ``privacy-ledger``
(and optionally ``max-delta``, default 1e-4) in its node config (``fedcl flower supernode --max-epsilon E
--privacy-ledger FILE``) trains only when:

- the run is record-level DP (a finite ``dp_epsilon``, ``dp_level`` "record"): node-level DP adds its noise
  on the server, which then sees the node's update in the clear;
- on the run's first message, the ε and δ the run is calibrated for fit in what the ledger has left of
  ``max-epsilon`` and ``max-delta``: the node reserves all of them then (a run's noise is calibrated for
  all its rounds), so runs add up by basic composition (Σ ε ≤ max-epsilon, Σ δ ≤ max-delta; without the
  δ budget, many runs of tiny ε would pile up δ), a resumed or repeated run being charged again;
- on later messages, the run's DP plan is the one reserved — its settings (ε, δ, clip, rounds, batch
  size, local epochs and steps) and the node's training row count, which sets the sampling rate and
  which the server moves through the split settings and seed — and the round is one of the plan's
  rounds that this node has not trained yet: a server that asks for more releases than it planned, or
  the same round twice, is refused.

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


#: A node's δ budget unless it sets ``max-delta``: ten runs at the default δ of 1e-5.
DEFAULT_MAX_DELTA = 1e-4


class PrivacyLedger:
    """The record of what one node has reserved and released, against its budget ``max_epsilon``
    and ``max_delta``."""

    def __init__(self, path: str | Path, max_epsilon: float, max_delta: float = DEFAULT_MAX_DELTA) -> None:
        if not (max_epsilon > 0 and math.isfinite(max_epsilon)):
            raise InputError(f"max-epsilon must be positive and finite, got {max_epsilon}")
        if not 0 < max_delta < 1:
            raise InputError(f"max-delta must be in (0, 1), got {max_delta}")
        self.path, self.max_epsilon, self.max_delta = Path(path), float(max_epsilon), float(max_delta)

    def charge(self, run_id: int, config: FedCLConfig, round_: int, n_rows: int) -> None:
        """Record that this node trains ``round_`` of run ``run_id`` on ``n_rows`` rows; :class:`BudgetRefused`
        if it may not. The refusals go back to the server: they say why, not what the node has left."""
        if not config.differential_privacy:
            raise BudgetRefused(f"run {run_id} asks for {self._mode(config)}; this node trains only under "
                                "record-level differential privacy within its own budget")
        plan = {**{key: getattr(config, key) for key in PLAN_KEYS}, "n_rows": int(n_rows)}
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
                for key, limit in (("dp_epsilon", self.max_epsilon), ("dp_delta", self.max_delta)):
                    if sum(e["plan"][key] for e in runs.values()) + plan[key] > limit * (1 + 1e-9):
                        raise BudgetRefused(f"run {run_id} asks for {'ε' if key == 'dp_epsilon' else 'δ'} = "
                                            f"{plan[key]:g}, more than this node's budget has left")
                self._append(ledger, {"run": run_id, "plan": plan})
            elif runs[run_id]["plan"] != plan:
                changed = sorted(k for k in plan if runs[run_id]["plan"].get(k) != plan[k])
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
        """The ε reserved so far, over every run (basic composition). Creates the ledger if it is missing:
        InputError (OSError) when it cannot be written or read as one."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+", encoding="utf-8") as ledger:
                fcntl.flock(ledger, fcntl.LOCK_SH)
                ledger.seek(0)
                entries = _entries(ledger.read(), self.path)
        except OSError as unusable:
            raise InputError(f"{self.path}: cannot keep the privacy ledger there ({unusable.strerror})") from None
        return sum(e["plan"]["dp_epsilon"] for e in entries if "plan" in e)


def _entries(text: str, path: Path) -> list[dict]:
    """The ledger's entries; InputError (the node trains no more) for a line that is not one."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            valid = isinstance(entry, dict) and isinstance(entry.get("run"), int) and (
                isinstance(entry.get("round"), int) or isinstance(entry.get("plan", {}).get("dp_epsilon"), float))
        except (json.JSONDecodeError, AttributeError):
            valid = False
        if not valid:
            raise InputError(f"{path}: not a privacy ledger (line {number}); the node trains no more until it is "
                             "mended or moved aside")
        entries.append(entry)
    return entries


#: The node-config keys of a budget: all of them absent (no budget), or max-epsilon and privacy-ledger given.
BUDGET_KEYS = ("max-epsilon", "max-delta", "privacy-ledger")


def node_ledger(node_config: dict) -> PrivacyLedger | None:
    """The node's ledger from its node config (:data:`BUDGET_KEYS`), or None when it sets none of them."""
    given = [key for key in BUDGET_KEYS if key in node_config]
    if not given:
        return None
    missing = [key for key in ("max-epsilon", "privacy-ledger") if not node_config.get(key)]
    if missing:  # half a budget must not silently mean none
        raise InputError(f"node config has {', '.join(given)} but no {' or '.join(missing)}: a budget needs "
                         "max-epsilon and the privacy-ledger file that records it")
    try:
        limits = [float(node_config[key]) for key in ("max-epsilon", "max-delta") if key in node_config]
    except ValueError:
        raise InputError(f"node config max-epsilon / max-delta must be numbers, got "
                         f"{[node_config.get(k) for k in ('max-epsilon', 'max-delta')]}") from None
    return PrivacyLedger(str(node_config["privacy-ledger"]), *limits)
