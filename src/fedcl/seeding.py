"""Per-node random streams, keyed the same way everywhere: by the node's name, not its position.

A node that runs alone (a Flower SuperNode, in a fresh process each round) then draws exactly what
it draws in the in-process runner, and adding or removing another node leaves its stream unchanged.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["node_rng", "node_seed"]


def node_seed(seed: int, node: str, *stream: int) -> list[int]:
    """Entropy of one node's stream: the run's seed, the node's name, then labels (round, purpose)."""
    return [seed, zlib.crc32(node.encode()), *stream]


def node_rng(seed: int, node: str, *stream: int) -> np.random.Generator:
    """A numpy generator for one node's stream (see :func:`node_seed`)."""
    return np.random.default_rng(node_seed(seed, node, *stream))
