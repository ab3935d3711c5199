"""Node-level differential privacy: DP-FedAvg (McMahan et al., ICLR 2018) over clipped updates.

The unit of privacy is a whole node: every row it holds, all rounds. Each round the server samples every
node with probability q (Poisson, from the OS's randomness); a sampled node trains in the clear and sends
only its update Δθ_i, which the server clips to ℓ2 norm S. The server adds N(0, (z·S)²) to the sum and
divides by the expected number of nodes q·N (a fixed denominator: adding or removing one node moves the
noised sum by at most S, whatever the others sent). Adjacency: one node's data present or absent (its
update replaced by nothing), N public. The released model is the one guarantee: anyone who sees θ (other
nodes, users of the model) learns at most (ε, δ) about a node's data. The server itself is trusted with
the clipped updates (central DP; docs/privacy.md), and keeps who was sampled to itself.

Nothing else leaves a node: μ_i, σ_i, n_i and d_i are not released, so the federation has no reference g
(the consistency term, which needs one, is off) and weights are uniform.
Opacus' RDP accountant composes the T rounds (sample rate q, noise multiplier z). The noise in the mean is
z·S/(q·N) per coordinate for ≈35 k coordinates: it pays only once q·N is in the hundreds
(`fedcl experiment privacy --level node`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.federated.aggregate import ServerStep
from fedcl.privacy.dp import secret_generator, smallest_noise, spent_epsilon


def clipped(update: list[np.ndarray], bound: float) -> list[np.ndarray]:
    """The update scaled to ℓ2 norm at most ``bound`` (over all its arrays together); a non-finite one
    becomes zeros (NaN would pass the clip and carry into θ without noise)."""
    norm = float(np.sqrt(sum(float(np.square(a, dtype=np.float64).sum()) for a in update)))
    if not math.isfinite(norm):
        return [np.zeros_like(a) for a in update]
    scale = min(1.0, bound / norm) if norm > 0 else 1.0
    return [a * scale for a in update]


@functools.lru_cache(maxsize=64)
def noise_multiplier(epsilon: float, delta: float, sample_rate: float, rounds: int) -> float:
    """The smallest z for which ``rounds`` subsampled Gaussian releases spend at most ε at δ."""
    return smallest_noise(lambda z: spent_epsilon([(z, sample_rate, rounds)], delta), epsilon)


@dataclass
class NodeLevelDP:
    """One run's DP-FedAvg server: who is sampled each round, and the noised mean of their clipped updates."""

    n_nodes: int
    sample_rate: float
    clip: float
    noise_multiplier: float
    delta: float
    generator: torch.Generator

    @classmethod
    def plan(cls, config: FedCLConfig, n_nodes: int) -> "NodeLevelDP":
        """Calibrated so that ``config.rounds`` rounds spend at most ``config.dp_epsilon``."""
        z = noise_multiplier(config.dp_epsilon, config.dp_delta, config.dp_sample_rate, config.rounds)
        return cls(n_nodes, config.dp_sample_rate, config.dp_update_clip, z, config.dp_delta, secret_generator())

    def sampled(self, n: int | None = None) -> np.ndarray:
        """Which of ``n`` nodes (default: the federation's N) the round asks (Poisson, secret: amplification
        by sampling needs it hidden)."""
        return (torch.rand(self.n_nodes if n is None else n, generator=self.generator) < self.sample_rate).numpy()

    def step(self, arrays: list[np.ndarray], updates: list[list[np.ndarray]]) -> ServerStep:
        """θ + (Σ clip(Δθ_i) + N(0, (z·S)²)) / (q·N); a round nobody answered still adds its noise."""
        total = [np.zeros(a.shape, np.float64) for a in arrays]
        for update in updates:
            for t, part in zip(total, clipped(update, self.clip)):
                t += part
        std = self.noise_multiplier * self.clip
        expected = self.sample_rate * self.n_nodes
        new = [(a + (t + std * torch.randn(a.shape, generator=self.generator, dtype=torch.float64).numpy())
                / expected).astype(a.dtype) for a, t in zip(arrays, total)]
        weights = np.full(len(updates), 1 / expected)
        return ServerStep(new, None, weights, [None] * len(updates))

    def epsilon(self, rounds_done: int) -> float:
        """ε spent after ``rounds_done`` rounds, per Opacus' RDP accountant."""
        return _epsilon(self.noise_multiplier, self.sample_rate, rounds_done, self.delta)


@functools.lru_cache(maxsize=1024)
def _epsilon(z: float, q: float, rounds: int, delta: float) -> float:
    return spent_epsilon([(z, q, rounds)], delta)


def privacy_record(config: FedCLConfig, history: list[dict]) -> dict:
    """metrics.json's ``privacy`` for a node-level run: the ε spent (from the history), δ, unit, mechanism."""
    import importlib.metadata

    spent = [h["epsilon"] for h in history if h.get("epsilon") is not None]
    return {
        "level": "node",
        "epsilon": max(spent) if spent else None,
        "delta": config.dp_delta,
        "target_epsilon": config.dp_epsilon,
        "unit": "one node: every row of its window, all rounds (node level; present or absent, N public)",
        "covers": "the federation's encoder (every θ the server releases); the server sees the clipped updates "
                  "(central DP); the node's own detector stays on it and is not private",
        "accountant": f"opacus RDPAccountant (opacus {importlib.metadata.version('opacus')}), one subsampled "
                      "Gaussian release per round",
        "mechanism": f"DP-FedAvg: Poisson sampling of nodes (rate {config.dp_sample_rate}), updates clipped to "
                     f"ℓ2 {config.dp_update_clip}, Gaussian noise on the sum, fixed denominator; no statistics "
                     "released",
    }
