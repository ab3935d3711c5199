"""Per-node embedding normalisation z̃ = (z − μ_i) / σ_i with the node's own statistics."""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-6


class EmbeddingNormaliser:
    """Holds a node's embedding mean μ_i and standard deviation σ_i, shape (dim,).

    `fit` takes the statistics of the embeddings it is given: during local training, of the
    current batch (a sample of the node's window, re-estimated every step so the centre never lags
    behind an encoder that moves); for the statistics a node reports (μ_i, σ_i), of its whole training window
    (:class:`fedcl.model.FedCLDetector` takes the same statistics itself for scoring).
    `fit` stores them detached from the graph, so in local training the gradient reaches θ only
    through z in z̃ = (z − μ_i)/σ_i, and ĝ_i = (g − μ_i)/σ_i (g in the node's frame) is a constant
    within a step. Without the detach, ĝ_i would depend on θ through μ_i and σ_i, and over the batch
    ‖z̃ − ĝ_i‖² would average to exactly dim + ‖ĝ_i‖² (z̃ has zero mean and unit variance there by
    construction): the consistency loss would then act only through μ_i and σ_i (pulling μ_i toward
    g and inflating σ_i), never on how the node's embeddings sit around g. Measured on fedmse-iid,
    strict leakage guard, 3 seeds (``benchmarks/normaliser_detach.py``): pooled FPR at TPR 0.99
    0.0062 ± 0.0012 detached against 0.0414 ± 0.0059 with the gradient. (A centre kept fixed for a
    whole round, or a moving average, let the embeddings drift past it, and training collapsed;
    an earlier observation, not re-measured.)

    With ``enabled=False`` (the "no per-node normalisation" ablation) it is the identity.
    """

    def __init__(self, dim: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.mean = torch.zeros(dim)
        self.std = torch.ones(dim)

    def fit(self, z: Tensor) -> "EmbeddingNormaliser":
        if self.enabled:
            self.mean = z.mean(dim=0).detach()
            self.std = z.std(dim=0, correction=0).detach() + _EPS
        return self

    def __call__(self, z: Tensor) -> Tensor:
        # z: (batch, dim) -> z̃: (batch, dim)
        return (z - self.mean) / self.std
