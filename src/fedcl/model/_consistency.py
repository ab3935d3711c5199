"""Cross-node consistency: pull a node's normalised embeddings toward the global reference g."""

from __future__ import annotations

from torch import Tensor, nn


def squared_distance(z_norm: Tensor, reference: Tensor) -> Tensor:
    """Per-row ‖z̃ − g‖² divided by the embedding size, shape (batch,).

    Dividing by the size keeps d_i, and so the server's weights 1/(1+d_i), comparable across
    embedding sizes: for a node whose embeddings match g in distribution, d_i ≈ 1.
    """
    return ((z_norm - reference) ** 2).mean(dim=1)


class ConsistencyLoss(nn.Module):
    """Mean over the batch of ‖z̃ − g‖² / dim."""

    def forward(self, z_norm: Tensor, reference: Tensor) -> Tensor:
        # z_norm: (batch, dim), reference: (dim,)
        return squared_distance(z_norm, reference).mean()
