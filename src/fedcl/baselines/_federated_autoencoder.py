"""FedAvg autoencoder across nodes (the FedIoT / Rey et al. 2022 baseline): one model, per-node scalers and thresholds."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import torch

from fedcl.baselines._autoencoder import AutoencoderDetector, build_autoencoder, train_epochs
from fedcl.data import NodeScaler
from fedcl.federated.aggregate import apply_updates, sample_weights
from fedcl.federated.local import node_generator
from fedcl.federated.params import get_arrays, set_arrays


def train_federated_autoencoder(
    node_rows: dict[str, np.ndarray],
    node_val: dict[str, np.ndarray] | None = None,
    rounds: int = 20,
    local_epochs: int = 1,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    fpr_target: float = 0.01,
    activation: str = "tanh",
    trainers: Collection[str] | None = None,
) -> dict[str, AutoencoderDetector]:
    """Train one Meidan-style autoencoder with FedAvg and return each node's detector.

    Each round, every node loads the global weights θ, runs ``local_epochs`` of Adam (a fresh
    optimiser each round, as in FedAvg) on its own benign rows, and sends Δθ_i and n_i; the server
    applies θ ← θ + Σ_i n_i Δθ_i / Σ_i n_i (:func:`fedcl.federated.aggregate.apply_updates` with
    :func:`~fedcl.federated.aggregate.sample_weights`). Each node scales with its own
    :class:`fedcl.data.NodeScaler`, fitted on its own training rows: no raw statistic is shared.

    Parameters
    ----------
    node_rows : dict of str to ndarray of shape (n_i, n_features)
        Each node's benign training rows, raw (guarded) values; NaN allowed.
    node_val : dict of str to ndarray of shape (m_i, n_features), optional
        Each node's benign validation rows: its threshold is the (1 − fpr_target) quantile of
        their scores. A node missing here (or ``node_val=None``) uses its training scores.
    rounds : int, default=20
    local_epochs : int, default=1
    batch_size : int, default=256
    lr : float, default=1e-3
    seed : int, default=0
        Seed of the initial weights and of every node's batch order: same seed, same weights.
    fpr_target : float, default=0.01
    activation : {"tanh", "relu"}, default="tanh"
    trainers : collection of str, optional
        The nodes that train (default: all). The others join afterwards: they only fit their scaler
        and threshold around the trained weights (a device the federation never saw).

    Returns
    -------
    detectors : dict of str to AutoencoderDetector
        One per node, in ``node_rows`` order: the global weights, the node's own scaler and threshold.
    """
    if not node_rows:
        raise ValueError("need at least one node")
    if rounds < 1 or local_epochs < 1:
        raise ValueError(f"rounds and local_epochs must be >= 1, got {rounds}, {local_epochs}")
    node_val = node_val or {}
    unknown = set(node_val) - set(node_rows)
    if unknown:
        raise ValueError(f"validation rows for unknown nodes: {sorted(unknown)}")
    template = AutoencoderDetector(activation=activation, epochs=rounds * local_epochs, batch_size=batch_size,
                                   lr=lr, fpr_target=fpr_target, random_state=seed)
    template._check_params()

    names = [n for n in node_rows if trainers is None or n in trainers]
    if not names:
        raise ValueError("no node trains: trainers names none of node_rows")
    # Scaling happens on the node, with the node's own statistics.
    x = {n: torch.from_numpy(NodeScaler().fit_transform(node_rows[n])) for n in names}
    widths = {v.shape[1] for v in x.values()}
    if len(widths) != 1:
        raise ValueError(f"every node needs the same number of columns, got {sorted(widths)}")
    weights = sample_weights([len(x[n]) for n in names])

    model = build_autoencoder(widths.pop(), activation, seed)
    arrays = get_arrays(model)
    for round_ in range(rounds):
        deltas = []
        for n in names:
            set_arrays(model, arrays)
            train_epochs(model, x[n], epochs=local_epochs, batch_size=batch_size, lr=lr,
                          generator=node_generator(seed, n, round_))
            deltas.append([new - old for new, old in zip(get_arrays(model), arrays)])
        arrays = apply_updates(arrays, deltas, weights)

    return {n: AutoencoderDetector(**template.get_params())._fit_from_arrays(arrays, node_rows[n], node_val.get(n))
            for n in node_rows}
