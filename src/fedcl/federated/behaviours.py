"""Simulated faulty and malicious nodes: what a node sends the server instead of its honest update.

Each behaviour takes the node's honest :class:`LocalUpdate`, the g it was sent and a random
generator, and returns the update it sends. (A noisy node is honest about corrupted data: that is a
data corruption, see :mod:`fedcl.data`, not a behaviour.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from fedcl.federated.local import LocalUpdate

Behaviour = Callable[[LocalUpdate, np.ndarray | None, np.random.Generator], LocalUpdate]

SCALE = 10.0  # the scaled attack's factor
RANDOM_STD = 1.0  # per-parameter std of a random update: weights are ~0.1, so this drowns the model


def free_rider(update: LocalUpdate, reference, rng) -> LocalUpdate:
    """Returns the model it was sent (Δθ = 0) and keeps its statistics, to look like it trained."""
    return replace(update, delta=[np.zeros_like(d) for d in update.delta])


def sign_flip(update: LocalUpdate, reference, rng) -> LocalUpdate:
    """Sends −Δθ: pushes the model away from what the data say, at an honest update's norm."""
    return replace(update, delta=[-d for d in update.delta])


def scaled(update: LocalUpdate, reference, rng) -> LocalUpdate:
    """Sends 10 · Δθ: one node's update outweighs everyone's under plain averaging."""
    return replace(update, delta=[SCALE * d for d in update.delta])


def random_update(update: LocalUpdate, reference, rng) -> LocalUpdate:
    """Sends Gaussian noise instead of an update."""
    return replace(update, delta=[rng.normal(0.0, RANDOM_STD, d.shape).astype(d.dtype) for d in update.delta])


def lying(update: LocalUpdate, reference, rng) -> LocalUpdate:
    """Claims to sit exactly on g (μ_i = g, and d_i = 0 in its own frame) to earn a large dynamic weight,
    while sending the most damaging of the forged updates above: −10 · Δθ. (The server now measures
    d_i itself from μ_i and σ_i, so the forged d_i buys nothing and μ_i = g only part of it.)"""
    claimed_mean = update.mean_embedding if reference is None else np.array(reference, dtype=np.float64)
    poisoned = [-SCALE * d for d in update.delta]
    return replace(update, delta=poisoned, distance=0.0, mean_embedding=claimed_mean)


BEHAVIOURS: dict[str, Behaviour] = {
    "free-rider": free_rider,
    "sign-flip": sign_flip,
    "scaled x10": scaled,
    "random": random_update,
    "lying d=0 + flip x10": lying,
}
