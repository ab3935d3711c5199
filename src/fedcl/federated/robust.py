"""Byzantine-robust server rules, and fedcl's guarded dynamic weighting.

Each rule maps the global θ and the nodes' updates to (new θ, g, per-node weight). Median and
trimmed mean call Flower's own functions (``aggregate_median``, ``aggregate_trimmed_avg`` from
``flwr.server.strategy.aggregate``) on the nodes' parameters θ + Δθ_i. Krum and Multi-Krum do not
call Flower: :func:`krum_selection` reimplements ``aggregate_krum``'s choice of nodes (so the rule
can report per-node weights), and ``tests/federated/test_robust.py`` checks that the resulting θ
equals ``aggregate_krum``'s. g is combined from the nodes' embedding means μ_i by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import trim_mean

from fedcl.federated.aggregate import apply_updates, dynamic_weights, reference_vector
from fedcl.federated.local import LocalUpdate

TRIM = 0.2  # Flower's FedTrimmedAvg default: 2 of 10 nodes cut at each end of every coordinate
OUTLIER_Z = 3.0  # robust z-score above which the guarded rule sets a node aside for the round


def assumed_malicious(n_nodes: int) -> int:
    """Krum's f: the most attackers its guarantee allows (n > 2f + 2), since the server cannot know."""
    return max(0, (n_nodes - 3) // 2)


def _parameters(arrays: Sequence[np.ndarray], updates: Sequence[LocalUpdate]) -> list[tuple[list[np.ndarray], int]]:
    return [([a + d for a, d in zip(arrays, u.delta)], u.n_samples) for u in updates]


def _as(theta: Sequence[np.ndarray], arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Flower's rules return float64 arrays; keep each array's own dtype."""
    return [np.asarray(t).astype(a.dtype) for t, a in zip(theta, arrays)]


def _flat(deltas: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Each node's Δθ as one float64 vector: (nodes, parameters)."""
    return np.stack([np.concatenate([np.ravel(d) for d in delta]).astype(np.float64) for delta in deltas])


def _means(updates: Sequence[LocalUpdate]) -> np.ndarray:
    return np.stack([u.mean_embedding for u in updates])


def median_rule(arrays, updates):
    from flwr.server.strategy.aggregate import aggregate_median

    n = len(updates)
    return _as(aggregate_median(_parameters(arrays, updates)), arrays), np.median(_means(updates), axis=0), np.full(n, 1 / n)


def trimmed_mean_rule(arrays, updates):
    from flwr.server.strategy.aggregate import aggregate_trimmed_avg

    n = len(updates)
    theta = aggregate_trimmed_avg(_parameters(arrays, updates), TRIM)
    return _as(theta, arrays), trim_mean(_means(updates), TRIM, axis=0), np.full(n, 1 / n)


def krum_selection(updates: Sequence[LocalUpdate], to_keep: int) -> np.ndarray:
    """Indices Krum (``to_keep`` = 0: one) or Multi-Krum keeps, as Flower's ``aggregate_krum`` picks them.

    Score of a node: the sum of squared distances to its n − f − 2 nearest other updates.
    """
    flat = _flat([u.delta for u in updates])
    distances = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(axis=2)
    closest = max(1, len(updates) - assumed_malicious(len(updates)) - 2)
    scores = np.array([np.sort(row)[1 : closest + 1].sum() for row in distances])
    return np.argsort(scores, kind="stable")[: max(to_keep, 1)]


def krum_rule(arrays, updates, multi: bool):
    n = len(updates)
    keep = krum_selection(updates, n - assumed_malicious(n) if multi else 0)
    counts = np.zeros(n)
    counts[keep] = [updates[i].n_samples for i in keep]
    weights = counts / counts.sum()  # Flower's Multi-Krum averages the kept nodes by sample count
    return (apply_updates(arrays, [u.delta for u in updates], weights),
            reference_vector(_means(updates), weights), weights)


def _robust_z(values: np.ndarray) -> np.ndarray:
    """(v − median) / (1.4826 · MAD): how many standard deviations above the typical node."""
    med = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - med))
    return (values - med) / max(mad, 1e-12 * max(abs(med), 1.0))


def guarded_dynamic_rule(arrays, updates):
    """fedcl's dynamic weights, without trusting what nodes report.

    1. Norm clipping: every Δθ_i is scaled down to at most the median update norm (a ×10 or random
       update cannot outweigh an honest one).
    2. Screening: a node whose clipped update, or whose embedding mean, lies more than 3 robust
       standard deviations further from the coordinate-wise median than the typical node is set
       aside for the round (sign-flipped and random updates, shifted means).
    3. Weights w_i ∝ 1 / (1 + max(d_i, median d)): a reported d_i can lower a node's pull but never
       raise it above that of a typical node, so claiming d_i = 0 buys nothing.
    """
    norms = np.linalg.norm(_flat([u.delta for u in updates]), axis=1)
    cap = np.median(norms)
    deltas = [[d * min(1.0, cap / n) if n > 0 else d for d in u.delta] for u, n in zip(updates, norms)]

    flat = _flat(deltas)
    means = _means(updates)
    update_spread = np.linalg.norm(flat - np.median(flat, axis=0), axis=1)
    mean_spread = np.linalg.norm(means - np.median(means, axis=0), axis=1)
    kept = (_robust_z(update_spread) <= OUTLIER_Z) & (_robust_z(mean_spread) <= OUTLIER_Z)
    if not kept.any():  # no majority agrees on anything: fall back to every node
        kept[:] = True

    distances = np.array([u.distance for u in updates])
    floor = np.median(distances[kept])
    weights = np.zeros(len(updates))
    weights[kept] = dynamic_weights(np.maximum(distances[kept], floor))
    return apply_updates(arrays, deltas, weights), reference_vector(means, weights), weights
