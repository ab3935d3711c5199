"""Fixed-point encoding of float vectors into the ring Z_{2^64}, where masks add and cancel exactly."""

from __future__ import annotations

import numpy as np

#: Fractional bits: a value x is sent as round(x · 2^32), so each node adds at most 2^-33 of error.
SCALE_BITS = 32
#: Values are clipped to ±2^15 before encoding. Nodes pre-scale by a normalised weight w_i ≤ 1, and an
#: encoder update, embedding mean or spread is orders of magnitude inside this range.
CLIP = 2.0**15
#: A sum of n encodings stays inside the signed 64-bit range while n · 2^15 · 2^32 < 2^63.
MAX_NODES = 2 ** (63 - 15 - SCALE_BITS) - 1


def encode(x: np.ndarray) -> np.ndarray:
    """Float vector -> uint64 ring elements: clip to ±CLIP, scale by 2^SCALE_BITS, round, two's complement."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("secure aggregation can only encode finite values")
    # |x| · 2^32 ≤ 2^47 < 2^53: the product is exact in float64 and the rounding is the only error.
    return np.rint(np.clip(x, -CLIP, CLIP) * 2.0**SCALE_BITS).astype(np.int64).view(np.uint64)


def decode(q: np.ndarray) -> np.ndarray:
    """uint64 ring elements (a sum of at most MAX_NODES encodings) -> float64 values."""
    return np.asarray(q, dtype=np.uint64).view(np.int64).astype(np.float64) / 2.0**SCALE_BITS


def max_error(n_nodes: int) -> float:
    """Largest absolute error of a decoded sum of ``n_nodes`` encodings (values inside ±CLIP)."""
    return n_nodes * 2.0 ** -(SCALE_BITS + 1)
