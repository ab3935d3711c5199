"""One node's share of a round: local epochs of InfoNCE + λ‖z̃ − g‖² on its benign rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from fedcl.config import FedCLConfig
from fedcl.federated._params import get_arrays, set_arrays
from fedcl.model import ConsistencyLoss, EmbeddingNormaliser, InfoNCELoss, augment, squared_distance


@dataclass(frozen=True)
class LocalUpdate:
    """What a node sends to the server: an update and a few statistics, never rows or embeddings.

    Attributes
    ----------
    delta : list of ndarray
        θ_i − θ, array by array.
    n_samples : int
        Rows trained on.
    mean_embedding : ndarray of shape (dim,)
        Mean z̃ over the node's local window.
    distance : float
        d_i, mean ‖z̃ − g‖² / dim over the local window.
    loss : float
        Mean training loss of the last local epoch.
    """

    delta: list[np.ndarray]
    n_samples: int
    mean_embedding: np.ndarray
    distance: float
    loss: float


@torch.no_grad()
def embed(encoder: nn.Module, x: Tensor, batch_size: int = 8192) -> Tensor:
    """Embeddings of x in eval mode, in batches to bound memory: (rows, dim)."""
    encoder.eval()
    return torch.cat([encoder(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def local_train(
    encoder: nn.Module,
    global_arrays: list[np.ndarray],
    x: Tensor,
    reference: np.ndarray,
    config: FedCLConfig,
    generator: torch.Generator,
) -> LocalUpdate:
    """Train ``encoder`` (loaded with the global θ) on one node's scaled benign rows ``x``.

    The node's statistics μ_i, σ_i start each round exact over its local window under the received
    model and then follow the encoder as a running (EMA) estimate. The reported d_i and mean z̃ use
    those running statistics, so a node whose representation moved far from where the round
    started, or from g, reports a larger d_i.
    """
    set_arrays(encoder, global_arrays)
    g = torch.as_tensor(reference, dtype=torch.float32)
    normaliser = EmbeddingNormaliser(config.embedding_dim, enabled=config.node_normalisation)
    normaliser.fit(embed(encoder, x))
    contrastive = InfoNCELoss(config.temperature)
    consistency = ConsistencyLoss()
    optimiser = torch.optim.Adam(encoder.parameters(), lr=config.lr)

    encoder.train()
    batch = min(config.batch_size, len(x))
    for _ in range(config.local_epochs):
        order = torch.randperm(len(x), generator=generator)
        losses = []
        # Drop a last batch of half a batch or less: too few negatives for a stable InfoNCE
        # (the order is reshuffled each epoch, so no row is left out for good).
        for start in range(0, max(len(x) - batch // 2, 1), batch):
            rows = x[order[start : start + batch]]
            if len(rows) < 2:
                continue
            z_a = encoder(augment(rows, config.mask_prob, config.noise_std, generator))
            z_b = encoder(augment(rows, config.mask_prob, config.noise_std, generator))
            zn_a, zn_b = normaliser(z_a), normaliser(z_b)
            loss = contrastive(zn_a, zn_b)
            if config.consistency_weight > 0:
                loss = loss + config.consistency_weight * 0.5 * (consistency(zn_a, g) + consistency(zn_b, g))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            normaliser.update(torch.cat([z_a, z_b]))
            losses.append(loss.item())

    z_norm = normaliser(embed(encoder, x))
    return LocalUpdate(
        delta=[new - old for new, old in zip(get_arrays(encoder), global_arrays)],
        n_samples=len(x),
        mean_embedding=z_norm.mean(dim=0).numpy().astype(np.float64),
        distance=float(squared_distance(z_norm, g).mean()),
        loss=float(np.mean(losses)) if losses else float("nan"),
    )
