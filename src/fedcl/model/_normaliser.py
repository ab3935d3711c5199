"""Per-node embedding normalisation z̃ = (z − μ_i) / σ_i with the node's own statistics."""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-6


class EmbeddingNormaliser:
    """Holds a node's embedding mean μ_i and standard deviation σ_i, shape (dim,).

    Estimates: exact over the node's local training window at the start of each round (`fit`),
    then an exponential moving average of batch statistics during local training (`update`), so the
    statistics follow the encoder as it moves. They are detached from the graph: if z̃ were
    normalised by the batch's own statistics, ‖z̃ − g‖² would average to dim + ‖g‖² whatever θ is,
    and the consistency loss would have no gradient.

    With ``enabled=False`` (the "no per-node normalisation" ablation) it is the identity.
    """

    def __init__(self, dim: int, enabled: bool = True, momentum: float = 0.1) -> None:
        self.enabled = enabled
        self.momentum = momentum
        self.mean = torch.zeros(dim)
        self.std = torch.ones(dim)

    def fit(self, z: Tensor) -> "EmbeddingNormaliser":
        if self.enabled:
            self.mean = z.mean(dim=0).detach()
            self.std = z.std(dim=0, correction=0).detach() + _EPS
        return self

    def update(self, z: Tensor) -> None:
        if self.enabled:
            m = self.momentum
            self.mean = (1 - m) * self.mean + m * z.mean(dim=0).detach()
            self.std = (1 - m) * self.std + m * (z.std(dim=0, correction=0).detach() + _EPS)

    def __call__(self, z: Tensor) -> Tensor:
        # z: (batch, dim) -> z̃: (batch, dim)
        return (z - self.mean) / self.std
