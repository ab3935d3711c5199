"""Server-side federated maths as plain numpy functions, shared by every transport (in-process, Flower)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _normalised(raw: np.ndarray) -> np.ndarray:
    if raw.ndim != 1 or len(raw) == 0:
        raise ValueError("need one weight per node, at least one node")
    if not np.all(np.isfinite(raw)) or np.any(raw < 0) or raw.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {raw}")
    return raw / raw.sum()


def dynamic_weights(distances: Sequence[float]) -> np.ndarray:
    """w_i = 1 / (1 + d_i), normalised to sum to 1.

    d_i is node i's mean ‖z̃ − ĝ_i‖² / dim, with ĝ_i = (g − μ_i)/σ_i the global reference in the
    node's normalised frame (:func:`fedcl.federated.local.local_train`): nodes whose embeddings sit
    far from the global reference, because their data are noisy or their update diverged, pull less.
    """
    d = np.asarray(distances, dtype=np.float64)
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise ValueError(f"distances must be finite and non-negative, got {d}")
    return _normalised(1.0 / (1.0 + d))


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
