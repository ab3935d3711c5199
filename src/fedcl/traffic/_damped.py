"""Damped sums over many streams at once: a segmented scan in numpy (FeatureExtractor without numba).

A damped statistic of one stream obeys ``S_i = γ_i · S_{i−1} + X_i`` with
``γ_i = 2^(−λ·(t_i − t_{i−1}))``. Packets of different streams are independent, so a chunk of
packets, sorted by stream, is one *segmented* linear recurrence. It is solved here by
recursive doubling on the affine maps ``S ↦ A·S + B`` (``log2`` of the longest segment numpy
passes) instead of a Python loop over packets. Only products of factors in (0, 1] occur, so
nothing overflows however far apart the timestamps are, which a closed form
``2^(−λt) · Σ 2^(λ t_k) X_k`` could not promise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["segment_starts", "damped_scan"]


def segment_starts(ids: np.ndarray) -> np.ndarray:
    """Boolean mask of the first element of every run of equal ``ids`` (ids sorted)."""
    starts = np.empty(len(ids), dtype=bool)
    if len(ids):
        starts[0] = True
        starts[1:] = ids[1:] != ids[:-1]
    return starts


def damped_scan(starts: np.ndarray, gamma: np.ndarray, X: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """Inclusive segmented scan ``S_i = γ_i · S_{i−1} + X_i``.

    Parameters
    ----------
    starts : ndarray of bool, shape (m,)
        True where a segment (one stream) begins.
    gamma : ndarray, shape (m, L)
        Decay factor since the stream's previous element, per decay rate; at a segment start,
        the decay since the stream's stored state.
    X : ndarray, shape (m, L, c) or (m, L)
        Values added at each element.
    initial : ndarray, shape (n_starts, L, c) or (n_starts, L)
        Stored state of each segment's stream, in segment order (zeros for a new stream).

    Returns
    -------
    ndarray, same shape as ``X``
        The state after each element.
    """
    B = np.array(X, dtype=np.float64, copy=True)
    A = np.array(gamma, dtype=np.float64, copy=True)
    extra = (slice(None),) * A.ndim + (None,) * (B.ndim - A.ndim)  # broadcast A over c
    B[starts] += A[starts][extra] * initial
    A[starts] = 0.0  # a segment start forgets whatever precedes it in the chunk
    m = len(B)
    if m == 0:
        return B
    idx = np.flatnonzero(starts)
    longest = int(np.diff(np.append(idx, m)).max())
    d = 1
    while d < longest:
        # (A, B)[i] ∘ (A, B)[i−d]: B_i += A_i · B_{i−d}; A_i *= A_{i−d}  (old values on the right)
        B[d:] += A[d:][extra] * B[:-d]
        A[d:] = A[d:] * A[:-d]
        d *= 2
    return B
