"""In-process federated runner: no servers, seeded, deterministic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from fedcl.config import FedCLConfig
from fedcl.federated._params import get_arrays
from fedcl.federated.aggregate import apply_updates, dynamic_weights, reference_vector, sample_weights
from fedcl.federated.local import LocalUpdate, local_train, node_generator
from fedcl.model import encoder_for


@dataclass
class FederationResult:
    """Global encoder parameters, global reference g and the per-round history."""

    arrays: list[np.ndarray]
    reference: np.ndarray
    history: list[dict] = field(default_factory=list)


def round_record(round_: int, names: list[str], updates: list[LocalUpdate], weights: np.ndarray,
                 reference: np.ndarray) -> dict:
    """One round of history: mean losses, ‖g‖ and each node's loss, distance and weight."""
    counts = [u.n_samples for u in updates]
    return {
        "round": round_,
        "loss": float(np.average([u.loss for u in updates], weights=counts)),
        "contrastive": float(np.average([u.contrastive for u in updates], weights=counts)),
        "reference_norm": float(np.linalg.norm(reference)),
        "nodes": {
            name: {"loss": u.loss, "distance": u.distance, "weight": float(w)}
            for name, u, w in zip(names, updates, weights)
        },
    }


def server_weights(updates: list[LocalUpdate], aggregation: str) -> np.ndarray:
    if aggregation == "dynamic":
        return dynamic_weights([u.distance for u in updates])
    return sample_weights([u.n_samples for u in updates])


def aggregate_round(
    arrays: list[np.ndarray], updates: list[LocalUpdate], aggregation: str
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """One server step: weights, new θ, new g."""
    weights = server_weights(updates, aggregation)
    new_arrays = apply_updates(arrays, [u.delta for u in updates], weights)
    reference = reference_vector([u.mean_embedding for u in updates], weights)
    return new_arrays, reference, weights


def run_federation(
    node_rows: dict[str, Tensor],
    config: FedCLConfig,
    on_round: Callable[[dict], None] | None = None,
) -> FederationResult:
    """Train one encoder across nodes without moving their rows.

    Parameters
    ----------
    node_rows : dict of name -> Tensor of shape (n_i, n_features)
        Each node's scaled benign training rows; they never leave ``local_train``.
    config : FedCLConfig
    on_round : callable, optional
        Called with each round's history record (for progress bars).
    """
    for name, rows in node_rows.items():
        if len(rows) < 2:
            raise ValueError(f"node {name!r} has {len(rows)} training row(s); contrastive training needs at least 2")
    torch.manual_seed(config.seed)
    n_features = next(iter(node_rows.values())).shape[1]
    encoder = encoder_for(config, n_features)
    arrays = get_arrays(encoder)
    reference = None  # no shared statistics before the first round
    history = []
    for round_ in range(1, config.rounds + 1):
        updates = [
            local_train(encoder, arrays, rows, reference, config, node_generator(config.seed, i, round_))
            for i, rows in enumerate(node_rows.values())
        ]
        arrays, reference, weights = aggregate_round(arrays, updates, config.aggregation)
        record = round_record(round_, list(node_rows), updates, weights, reference)
        history.append(record)
        if on_round is not None:
            on_round(record)
    return FederationResult(arrays=arrays, reference=reference, history=history)
