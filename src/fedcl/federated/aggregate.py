"""Server-side federated maths as plain numpy functions, shared by every transport (in-process, Flower)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class ServerStep:
    """What one server round decides: the new θ and g, each node's weight, and for each node the
    reason it was set aside for the round (None: it was not)."""

    arrays: list[np.ndarray]
    reference: np.ndarray
    weights: np.ndarray
    reasons: list[str | None]


def _normalised(raw: np.ndarray) -> np.ndarray:
    if raw.ndim != 1 or len(raw) == 0:
        raise ValueError("need one weight per node, at least one node")
    if not np.all(np.isfinite(raw)) or np.any(raw < 0) or raw.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {raw}")
    return raw / raw.sum()


def dynamic_weights(distances: Sequence[float]) -> np.ndarray:
    """w_i = 1 / (1 + d_i), normalised to sum to 1.

    d_i is node i's distance from the federation's representations (:func:`divergences`): nodes
    whose embeddings sit far from the others', because their data are noisy or their update
    diverged, pull less.
    """
    d = np.asarray(distances, dtype=np.float64)
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise ValueError(f"distances must be finite and non-negative, got {d}")
    return _normalised(1.0 / (1.0 + d))


def divergences(means: Sequence[np.ndarray], stds: Sequence[np.ndarray]) -> np.ndarray:
    """d_i: how far node i's representations sit from the federation's, in one frame all nodes share.

    The federation's representations are summarised robustly by the coordinate-wise medians m of
    the μ_i and s of the σ_i (a few bad nodes cannot move them); node i's distance is the squared
    2-Wasserstein distance between N(μ_i, diag σ_i²) and N(m, diag s²), in units of the
    federation's total variance:

        d_i = (‖μ_i − m‖² + ‖σ_i − s‖²) / ‖s‖²

    A node whose embeddings are shifted or more spread (noisy rows) gets a larger d_i, whatever
    its own scale. (d_i measured in the node's own σ_i units, as the node reports it, would do the
    opposite: noise inflates σ_i and shrinks the distance.)
    """
    mu = np.stack([np.asarray(m, dtype=np.float64) for m in means])  # (nodes, dim)
    sd = np.stack([np.asarray(s, dtype=np.float64) for s in stds])
    if mu.shape != sd.shape:
        raise ValueError(f"means {mu.shape} and stds {sd.shape} differ in shape")
    centre, scale = np.median(mu, axis=0), np.median(sd, axis=0)
    total = max(float((scale**2).sum()), 1e-12)
    return (((mu - centre) ** 2).sum(axis=1) + ((sd - scale) ** 2).sum(axis=1)) / total


def sample_weights(counts: Sequence[int]) -> np.ndarray:
    """FedAvg weights: w_i = n_i / Σ n."""
    return _normalised(np.asarray(counts, dtype=np.float64))


def apply_updates(
    arrays: Sequence[np.ndarray], deltas: Sequence[Sequence[np.ndarray]], weights: Sequence[float]
) -> list[np.ndarray]:
    """θ ← θ + Σ_i w_i Δθ_i / Σ_i w_i, array by array, keeping each array's dtype."""
    w = _normalised(np.asarray(weights, dtype=np.float64))
    if len(deltas) != len(w):
        raise ValueError(f"{len(deltas)} updates but {len(w)} weights")
    for delta in deltas:
        if len(delta) != len(arrays) or any(np.shape(d) != np.shape(a) for d, a in zip(delta, arrays)):
            raise ValueError("every update must have the model's arrays, with the same shapes")
    out = []
    for k, theta in enumerate(arrays):
        new = theta + sum(wi * np.asarray(delta[k], dtype=np.float64) for wi, delta in zip(w, deltas))
        # Integer buffers (counters) are rounded, not truncated, back to their own dtype.
        out.append((np.rint(new) if np.issubdtype(theta.dtype, np.integer) else new).astype(theta.dtype))
    return out


def reference_vector(means: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """g = Σ_i w_i μ_i / Σ_i w_i, μ_i the mean of node i's raw embeddings z (not of z̃, whose mean
    is 0): built from per-node statistics, never from rows."""
    w = _normalised(np.asarray(weights, dtype=np.float64))
    m = np.stack([np.asarray(v, dtype=np.float64) for v in means])  # (nodes, dim)
    if len(m) != len(w):
        raise ValueError(f"{len(m)} means but {len(w)} weights")
    return (w[:, None] * m).sum(axis=0)
