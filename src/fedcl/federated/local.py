"""One node's share of a round: local epochs of InfoNCE + λ‖z̃ − ĝ_i‖²/dim on its benign rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from fedcl.config import FedCLConfig
from fedcl.federated.params import get_arrays, set_arrays
from fedcl.model import ConsistencyLoss, EmbeddingNormaliser, InfoNCELoss, augment, island_rows, squared_distance
from fedcl.seeding import node_seed


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
        μ_i: mean of the raw embeddings z (not of z̃, whose mean is 0 by construction) over the
        node's training rows, under the updated θ_i.
    distance : float
        Mean ‖z̃ − ĝ_i‖² / dim over the node's training rows, with ĝ_i = (g − μ_i)/σ_i the
        reference in the node's frame (ĝ_i = 0 before the server has sent a g): how far the node
        sits from g in its own σ units. A diagnostic in the history (``own_frame_distance``); the
        server's weights use the shared-frame d_i instead.
    loss : float
        Mean training loss (InfoNCE + λ·consistency) of the last local epoch.
    contrastive : float
        Its InfoNCE part alone.
    std_embedding : ndarray of shape (dim,)
        σ_i: per-dimension standard deviation of the raw embeddings z, with μ_i what places the
        node's representations in the frame all nodes share (the server's d_i, see
        :func:`fedcl.federated.aggregate.divergences`).
    """

    delta: list[np.ndarray]
    n_samples: int
    mean_embedding: np.ndarray
    distance: float
    loss: float
    contrastive: float
    std_embedding: np.ndarray


def node_generator(seed: int, node: str, round_: int) -> torch.Generator:
    """The random stream of one node in one round (shuffling, augmentations): a function of the
    seed, the node's name and the round only (:mod:`fedcl.seeding`)."""
    state = np.random.SeedSequence(node_seed(seed, node, round_)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


@torch.no_grad()
def embed(encoder: nn.Module, x: Tensor, batch_size: int = 8192) -> Tensor:
    """Embeddings of x in eval mode, in batches to bound memory: (rows, dim)."""
    encoder.eval()
    return torch.cat([encoder(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def without_islands(encoder: nn.Module, x: Tensor, trim_fraction: float) -> Tensor:
    """The rows of ``x`` (rows, features) but those in islands of their normalised embeddings under the
    encoder as it is (:func:`fedcl.model.island_rows`, at most ``trim_fraction`` of the rows): attack
    rows recorded in a benign training window, which the encoder would otherwise learn as benign."""
    if trim_fraction == 0:
        return x
    z = embed(encoder, x)
    z_norm = EmbeddingNormaliser(z.shape[1]).fit(z)(z)  # z̃, the frame the detector looks for islands in
    return x[torch.from_numpy(~island_rows(z_norm.numpy(), trim_fraction))]


def local_train(
    encoder: nn.Module,
    global_arrays: list[np.ndarray],
    x: Tensor,
    reference: np.ndarray | None,
    config: FedCLConfig,
    generator: torch.Generator,
) -> LocalUpdate:
    """Train ``encoder`` (loaded with the global θ) on one node's scaled benign rows ``x``.

    g lives in the shared embedding space (a weighted mean of the nodes' embedding means μ_i); each
    node compares its z̃ with g expressed in its own frame, (g − μ_i)/σ_i, so the consistency term
    ‖z̃ − (g − μ_i)/σ_i‖² = ‖(z − g)/σ_i‖² pulls the node's embeddings toward the common centre.
    (Compared with g in z̃ space directly, the term would be degenerate: every node's z̃ has mean 0
    by construction, so g would be 0 and every d_i the same.)

    μ_i, σ_i: during training, the statistics of the current batch (both views), detached from the
    graph, so ĝ_i is a constant within a step and the gradient reaches θ only through z in
    z̃ = (z − μ_i)/σ_i (see :class:`fedcl.model.EmbeddingNormaliser`); for the reported μ_i and d_i,
    exact statistics over all the node's training rows under the updated θ_i.

    With ``config.trim_fraction`` > 0, the rows in islands of the node's embeddings under the global θ
    (:func:`without_islands`) sit the round out, training and statistics alike; each round looks
    again, with the encoder the rounds before trained on the rows they kept.
    """
    set_arrays(encoder, global_arrays)
    x = without_islands(encoder, x, config.trim_fraction)
    g = None if reference is None else torch.as_tensor(reference, dtype=torch.float32)
    normaliser = EmbeddingNormaliser(config.embedding_dim, enabled=config.node_normalisation)
    contrastive = InfoNCELoss(config.temperature)
    consistency = ConsistencyLoss()
    optimiser = torch.optim.Adam(encoder.parameters(), lr=config.lr)

    encoder.train()
    batch = min(config.batch_size, len(x))
    steps = 0
    for _ in range(config.local_epochs):
        order = torch.randperm(len(x), generator=generator)
        losses, contrastive_losses = [], []
        # Drop a last batch of half a batch or less: too few negatives for a stable InfoNCE
        # (the order is reshuffled each epoch, so no row is left out for good).
        for start in range(0, max(len(x) - batch // 2, 1), batch):
            if config.local_steps and steps == config.local_steps:
                break  # bounded work per round: a large node drifts no further than a small one
            rows = x[order[start : start + batch]]
            if len(rows) < 2:
                continue
            steps += 1
            z_a = encoder(augment(rows, config.mask_prob, config.noise_std, generator))
            z_b = encoder(augment(rows, config.mask_prob, config.noise_std, generator))
            normaliser.fit(torch.cat([z_a, z_b]))  # μ_i, σ_i of this batch (both views), detached
            zn_a, zn_b = normaliser(z_a), normaliser(z_b)
            loss = contrastive(zn_a, zn_b)
            contrastive_losses.append(loss.item())
            if config.consistency_weight > 0 and g is not None:
                g_node = normaliser(g[None])[0]  # g in this node's normalised frame: (g − μ_i)/σ_i
                loss = loss + config.consistency_weight * 0.5 * (consistency(zn_a, g_node) + consistency(zn_b, g_node))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())

    z = embed(encoder, x)
    normaliser.fit(z)  # exact statistics of the updated model over the local window
    z_norm = normaliser(z)
    g_node = torch.zeros(z.shape[1]) if g is None else normaliser(g[None])[0]
    return LocalUpdate(
        delta=[new - old for new, old in zip(get_arrays(encoder), global_arrays)],
        n_samples=len(x),
        mean_embedding=z.mean(dim=0).numpy().astype(np.float64),  # μ_i: mean of the raw z, not of z̃
        distance=float(squared_distance(z_norm, g_node).mean()),
        loss=float(np.mean(losses)) if losses else float("nan"),
        contrastive=float(np.mean(contrastive_losses)) if losses else float("nan"),
        std_embedding=z.std(dim=0, correction=0).numpy().astype(np.float64),
    )
