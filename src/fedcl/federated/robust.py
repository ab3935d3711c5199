"""Byzantine-robust server rules, and fedcl's guarded dynamic weighting.

Each rule maps the global θ and the nodes' updates to a :class:`~fedcl.federated.aggregate.ServerStep`
(new θ, g, per-node weight, and why a node was set aside). Median and
trimmed mean call Flower's own functions (``aggregate_median``, ``aggregate_trimmed_avg`` from
``flwr.server.strategy.aggregate``) on the nodes' parameters θ + Δθ_i. Krum and Multi-Krum do not
call Flower: :func:`krum_selection` reimplements ``aggregate_krum``'s choice of nodes (so the rule
can report per-node weights), and ``tests/federated/test_robust.py`` checks that the resulting θ
equals ``aggregate_krum``'s. g is combined from the nodes' embedding means μ_i by the same rule (the guarded rule first moves each
μ_i toward the median μ, see :func:`guarded_dynamic_rule`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import trim_mean

from fedcl.federated.aggregate import ServerStep, apply_updates, divergences, dynamic_weights, reference_vector
from fedcl.federated.local import LocalUpdate

TRIM = 0.2  # Flower's FedTrimmedAvg default: 2 of 10 nodes cut at each end of every coordinate
MIN_COSINE = 0.0  # the guarded rule sets aside updates whose cosine to the median update is not above this


def assumed_malicious(n_nodes: int) -> int:
    """Krum's f: the most attackers its guarantee allows (n > 2f + 2), since the server cannot know."""
    return max(0, (n_nodes - 3) // 2)


def _parameters(arrays: Sequence[np.ndarray], updates: Sequence[LocalUpdate]) -> list[tuple[list[np.ndarray], int]]:
    return [([a + d for a, d in zip(arrays, u.delta)], u.n_samples) for u in updates]


def _as(theta: Sequence[np.ndarray], arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Flower's rules return float64 arrays; keep each array's own dtype."""
    return [np.asarray(t).astype(a.dtype) for t, a in zip(theta, arrays)]


def flat_updates(deltas: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Each node's Δθ as one float64 vector: (nodes, parameters)."""
    return np.stack([np.concatenate([np.ravel(d) for d in delta]).astype(np.float64) for delta in deltas])


def _means(updates: Sequence[LocalUpdate]) -> np.ndarray:
    return np.stack([u.mean_embedding for u in updates])


def median_rule(arrays, updates):
    from flwr.server.strategy.aggregate import aggregate_median

    n = len(updates)
    return ServerStep(_as(aggregate_median(_parameters(arrays, updates)), arrays), np.median(_means(updates), axis=0),
                      np.full(n, 1 / n), [None] * n)


def trimmed_mean_rule(arrays, updates):
    from flwr.server.strategy.aggregate import aggregate_trimmed_avg

    n = len(updates)
    theta = aggregate_trimmed_avg(_parameters(arrays, updates), TRIM)
    return ServerStep(_as(theta, arrays), trim_mean(_means(updates), TRIM, axis=0), np.full(n, 1 / n), [None] * n)


def krum_selection(updates: Sequence[LocalUpdate], to_keep: int) -> np.ndarray:
    """Indices Krum (``to_keep`` = 0: one) or Multi-Krum keeps, as Flower's ``aggregate_krum`` picks them.

    Score of a node: the sum of squared distances to its n − f − 2 nearest other updates.
    """
    flat = flat_updates([u.delta for u in updates])
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
    reasons = [None if i in keep else f"not among the {len(keep)} update(s) {'Multi-' if multi else ''}Krum keeps"
               for i in range(n)]
    return ServerStep(apply_updates(arrays, [u.delta for u in updates], weights),
                      reference_vector(_means(updates), weights), weights, reasons)


def _clipped_to_median_distance(points: np.ndarray) -> np.ndarray:
    """Each row moved toward the coordinate-wise median to at most the median distance from it."""
    centre = np.median(points, axis=0)
    offsets = points - centre
    norms = np.linalg.norm(offsets, axis=1)
    radius = np.median(norms)
    scale = np.where(norms > radius, radius / np.maximum(norms, 1e-300), 1.0)
    return centre + offsets * scale[:, None]


def guarded_dynamic_rule(arrays, updates) -> ServerStep:
    """fedcl's dynamic weights without trusting what nodes report, and without taking a node whose
    data differ for a malicious one.

    1. Norm clipping: every Δθ_i is scaled down to at most the median update norm (a ×10 or random
       update cannot outweigh an honest one).
    2. Direction screen: a node whose update does not point the federation's way, cosine to the
       coordinate-wise median update ≤ 0 (a sign-flipped, a zero or a pushed-back update), is set
       aside for the round, with the reason in the round's history. Distance from the other nodes is
       never a reason: an honest device unlike the rest sends a distant update and a distant
       embedding mean, but its update still points the same way.
    3. Weights w_i ∝ 1 / (1 + max(d_i, median d)), d_i the distance in the shared frame
       (:func:`~fedcl.federated.aggregate.divergences`, computed here from μ_i and σ_i, not taken
       from the node): a noisy node pulls less, and a forged μ_i, σ_i can lower a node's pull but
       never raise it above that of a typical node.
    4. g = Σ w_i μ_i with each μ_i first moved toward the median μ to at most the median distance:
       a forged mean cannot drag g far, a distant honest one still counts.
    """
    norms = np.linalg.norm(flat_updates([u.delta for u in updates]), axis=1)
    cap = np.median(norms)
    deltas = [[d * min(1.0, cap / n) if n > 0 else d for d in u.delta] for u, n in zip(updates, norms)]

    flat = flat_updates(deltas)
    median_update = np.median(flat, axis=0)
    cosine = flat @ median_update / np.maximum(np.linalg.norm(flat, axis=1) * np.linalg.norm(median_update), 1e-300)
    reasons = [None if c > MIN_COSINE else f"update points away from the federation's (cosine {c:.2f} to the "
               f"median update)" for c in cosine]
    kept = np.array([r is None for r in reasons])
    if not kept.any():  # no direction to agree on (e.g. every update is 0): keep everyone
        kept[:], reasons = True, [None] * len(updates)

    d = divergences(_means(updates), [u.std_embedding for u in updates])
    weights = np.zeros(len(updates))
    weights[kept] = dynamic_weights(np.maximum(d[kept], np.median(d[kept])))
    reference = reference_vector(_clipped_to_median_distance(_means(updates)), weights)
    return ServerStep(apply_updates(arrays, deltas, weights), reference, weights, reasons)
