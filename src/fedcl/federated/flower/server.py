"""The server side of a Flower run: start or resume, checkpoint every round, write the model."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from fedcl.config import FedCLConfig, save_config
from fedcl.errors import ConfigError
from fedcl.federated.flower.pacing import PacedGrid, check_pacing, resolve_min_nodes
from fedcl.federated.flower.registry import EnrolledGrid
from fedcl.federated.flower.run_dir import CHECKPOINT_FILE, check_run_dir
from fedcl.federated.flower.strategy import FedCLStrategy
from fedcl.federated.params import get_arrays
from fedcl.model import initial_encoder
from fedcl.pipeline import trained_encoder
from fedcl.pipeline.checkpoint import atomic_save
from fedcl.rundir import (CONFIG_FILE, HISTORY_FILE, MODEL_FILE, append_history, clear_results, prepare_run_dir,
                          read_history)

__all__ = ["CHECKPOINT_FILE", "load_checkpoint", "run_server"]


class Checkpoint(NamedTuple):
    round: int  # the last finished round
    arrays: list[np.ndarray]  # θ
    reference: np.ndarray | None  # g; None under node-level DP
    fleet_size: int | None  # N of node-level DP's fixed denominator, once planned


def load_checkpoint(out_dir: Path) -> Checkpoint | None:
    """What an interrupted run saved after its last finished round, or None."""
    path = out_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=True)
    reference = saved["reference"].numpy() if saved["reference"].numel() else None
    return Checkpoint(int(saved["round"]), [t.numpy() for t in saved["arrays"]], reference, saved.get("fleet_size"))


def run_server(grid: Grid, config: FedCLConfig, out_dir: str | Path, *, n_features: int = 115,
               min_nodes: float = 2, round_timeout: float = 600.0, resume: bool = False,
               evaluate: bool = True, sample_fraction: float = 1.0, timeout_multiple: float = 3.0,
               timeout_floor: float = 60.0, on_round: Callable[[dict], None] | None = None) -> FedCLStrategy:
    """Drive ``config.rounds`` rounds of fedcl over ``grid``; θ and g are saved after every round.

    ``min_nodes``: the fewest connected nodes a round needs, so a run carries on when nodes drop out;
    below 1, a share of the fleet (:func:`.pacing.resolve_min_nodes`). ``sample_fraction``: the share of
    the nodes asked to train each round (seeded). A round waits at most ``round_timeout`` seconds, and
    ends sooner at ``timeout_multiple`` × a measured time, at least ``timeout_floor``
    (:class:`.pacing.PacedGrid`). ``resume``: continue from the last checkpoint in ``out_dir``, written
    with the same settings; without it ``out_dir`` must hold no checkpoint (:func:`check_run_dir`).
    ``evaluate``: afterwards every node evaluates the final model on its own held-out rows, and
    fleet.json and fleet.md gather their metrics (:mod:`.fleet`; not under differential privacy,
    whose ε does not count them). With ``config.secure_aggregation`` each round's masked sums run as
    extra exchanges, each waiting up to ``round_timeout`` too (docs/privacy.md). With ``config.dp_level``
    "node" the server runs DP-FedAvg and samples the nodes itself (``sample_fraction`` must stay 1).
    ``on_round`` gets each round's history record once it is saved.
    """
    check_pacing(round_timeout, timeout_multiple, timeout_floor, sample_fraction)
    if config.node_differential_privacy and sample_fraction != 1:
        raise ConfigError(f"sample-fraction {sample_fraction:g}: under dp_level node the server samples nodes "
                          "itself, secretly (dp_sample_rate)")
    min_nodes = resolve_min_nodes(min_nodes, grid)

    def paced(transport):
        return PacedGrid(transport, round_timeout, timeout_multiple, timeout_floor, min_replies=min_nodes)

    grid = grid.wrap_transport(paced) if isinstance(grid, EnrolledGrid) else paced(grid)
    # A masked sum of one node would be that node's update; a noised mean over a fleet of one, its data.
    for needs_two, what in ((config.secure_aggregation, "secure_aggregation"),
                            (config.node_differential_privacy, "dp_level node")):
        if needs_two and min_nodes < 2:
            raise ConfigError(f"{what} needs min_nodes >= 2, got {min_nodes}")
    if config.schema != "nbaiot":  # the server sizes the encoder for N-BaIoT's 115 columns
        raise ConfigError(f"schema {config.schema} is not yet on Flower: use fedcl run/train --schema auto")
    out = prepare_run_dir(out_dir)
    check_run_dir(out, config, resume)
    checkpoint = load_checkpoint(out) if resume else None
    if checkpoint is None:
        done, arrays, reference = 0, get_arrays(initial_encoder(config, n_features)), None  # as in-process
        clear_results(out)
        (out / HISTORY_FILE).write_text("")
    else:
        done, arrays, reference = checkpoint.round, checkpoint.arrays, checkpoint.reference
        if done > config.rounds:
            raise ConfigError(f"{out}: the checkpoint is at round {done}, beyond rounds={config.rounds}")
    save_config(config, out / CONFIG_FILE)

    def save_round(round_: int, new_arrays: list[np.ndarray], g: np.ndarray | None, record: dict) -> None:
        atomic_save({"round": round_, "arrays": [torch.from_numpy(a) for a in new_arrays],
                     "reference": torch.from_numpy(g) if g is not None else torch.empty(0),
                     "fleet_size": strategy.fleet_size}, out / CHECKPOINT_FILE)
        append_history(out, record)
        if on_round is not None:
            on_round(record)

    strategy = FedCLStrategy(config, reference=reference, on_round=save_round, round_offset=done,
                             timeout=round_timeout, sample_fraction=sample_fraction,
                             fleet_size=checkpoint.fleet_size if checkpoint is not None else None,
                             min_available_nodes=min_nodes, min_train_nodes=min_nodes)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(arrays), num_rounds=config.rounds - done,
                            timeout=round_timeout)
    # No round aggregated (e.g. every one skipped under secure aggregation): θ is what was sent first.
    final = result.arrays.to_numpy_ndarrays() if result.arrays is not None and len(result.arrays) else arrays
    atomic_save({
        "config": config.to_dict(),
        "n_features": n_features,
        "encoder": trained_encoder(config, final, n_features).state_dict(),
        "reference": torch.as_tensor(strategy.reference if strategy.reference is not None
                                     else np.zeros(config.embedding_dim), dtype=torch.float32),
        "nodes": {},  # detectors are fitted where the data are (fedcl evaluate --data)
    }, out / MODEL_FILE)
    if evaluate and math.isfinite(config.dp_epsilon):
        # The replies depend on the training rows (references, own encoder) and ε does not count them.
        logging.getLogger("flwr").warning("no federated evaluation under differential privacy: its metrics and "
                                          "score histograms are not covered by ε; evaluate on each node "
                                          "(fedcl evaluate --data)")
    elif evaluate:
        from fedcl.federated.flower.fleet import evaluate_fleet

        # A node trains its own encoder to evaluate (personalisation): about the whole run's local work,
        # twice under tuned (the fine-tuned encoder too).
        evaluate_fleet(grid, config, final, strategy.reference, out, read_history(out),
                       round_timeout * ((2 if config.personalisation == "tuned" else 1) * config.rounds + 1))
    return strategy
