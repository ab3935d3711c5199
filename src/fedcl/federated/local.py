"""One node's share of a round: local epochs of InfoNCE + λ‖z̃ − ĝ_i‖²/dim on its benign rows."""

from __future__ import annotations

import math
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
    epsilon : float or None
        Under differential privacy, the ε the node has spent after this round, per the accountant
        (:mod:`fedcl.privacy.dp`); then ``n_samples``, ``mean_embedding`` and ``std_embedding`` are the
        Gaussian mechanism's releases, ``distance`` is computed from them, and ``loss`` and
        ``contrastive`` are NaN (not sent). None without differential privacy.
    """

    delta: list[np.ndarray]
    n_samples: int
    mean_embedding: np.ndarray
    distance: float
    loss: float
    contrastive: float
    std_embedding: np.ndarray
    epsilon: float | None = None


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


def local_epochs(n_rows: int, config: FedCLConfig) -> int:
    """Epochs of one node's round: ``local_epochs``, or ⌈``min_rows_per_round`` / n⌉ for a node of n rows
    if that is more (a few hundred rows are otherwise a step or two a round)."""
    return max(config.local_epochs, math.ceil(config.min_rows_per_round / max(n_rows, 1)))


def batch_starts(n_rows: int, batch: int) -> range:
    """Where an epoch's batches start. A last batch of half a batch or less is dropped: too few negatives
    for a stable InfoNCE (the order is reshuffled each epoch, so no row is left out for good)."""
    return range(0, max(n_rows - batch // 2, 1), batch)


def normalised_views(encoder: nn.Module, rows: Tensor, normaliser: EmbeddingNormaliser, config: FedCLConfig,
                     generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two augmented views of ``rows`` embedded and normalised with μ_i, σ_i of this batch (both views,
    detached: ``normaliser`` holds them afterwards)."""
    z_a = encoder(augment(rows, config.mask_prob, config.noise_std, generator))
    z_b = encoder(augment(rows, config.mask_prob, config.noise_std, generator))
    normaliser.fit(torch.cat([z_a, z_b]))
    return normaliser(z_a), normaliser(z_b)


def local_train(
    encoder: nn.Module,
    global_arrays: list[np.ndarray],
    x: Tensor,
    reference: np.ndarray | None,
    config: FedCLConfig,
    generator: torch.Generator,
    round_: int | None = None,
    train_only: str | None = None,
) -> LocalUpdate:
    """Train ``encoder`` (loaded with the global θ) on one node's scaled benign rows ``x``; with
    ``train_only``, only its last or first layer (:func:`trainable_parameters`).

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

    With ``config.differential_privacy`` the node trains with DP-SGD instead (:func:`private_local_train`);
    ``round_`` (1-based; default: the last) is then how many rounds the reported ε counts.
    """
    if config.differential_privacy:
        if train_only is not None:
            raise ValueError("train_only is for fine-tuning a node's encoder on its own rows, which trains without DP")
        return private_local_train(encoder, global_arrays, x, reference, config, generator, round_)
    set_arrays(encoder, global_arrays)
    x = without_islands(encoder, x, config.trim_fraction)
    g = None if reference is None else torch.as_tensor(reference, dtype=torch.float32)
    normaliser = EmbeddingNormaliser(config.embedding_dim, enabled=config.node_normalisation)
    contrastive = InfoNCELoss(config.temperature)
    consistency = ConsistencyLoss()
    optimiser = torch.optim.Adam(trainable_parameters(encoder, train_only), lr=config.lr)

    encoder.train()
    batch = min(config.batch_size, len(x))
    steps = 0
    for _ in range(local_epochs(len(x), config)):
        if config.local_steps and steps == config.local_steps:
            break  # the bound came at an epoch's end: the losses reported stay the last epoch's
        order = torch.randperm(len(x), generator=generator)
        losses, contrastive_losses = [], []
        for start in batch_starts(len(x), batch):
            if config.local_steps and steps == config.local_steps:
                break  # bounded work per round: a large node drifts no further than a small one
            rows = x[order[start : start + batch]]
            if len(rows) < 2:
                continue
            steps += 1
            zn_a, zn_b = normalised_views(encoder, rows, normaliser, config, generator)
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


TRAIN_ONLY = {"head": -1, "input": 0}  # which of the encoder's modules holding parameters, in registration order


def trainable_parameters(encoder: nn.Module, only: str | None = None) -> list[nn.Parameter]:
    """The parameters local training updates: all of them, or only those of the encoder's last (``"head"``)
    or first (``"input"``) module holding parameters of its own, in registration order — fine-tuned on one
    node, a personal head or input layer, the usual alternatives to fine-tuning every layer."""
    if only is None:
        return list(encoder.parameters())
    if only not in TRAIN_ONLY:
        raise ValueError(f"train_only must be one of {sorted(TRAIN_ONLY)}, got {only!r}")
    layers = [m for m in encoder.modules() if next(m.parameters(recurse=False), None) is not None]
    return list(layers[TRAIN_ONLY[only]].parameters(recurse=False))


def private_local_train(
    encoder: nn.Module,
    global_arrays: list[np.ndarray],
    x: Tensor,
    reference: np.ndarray | None,
    config: FedCLConfig,
    generator: torch.Generator,
    round_: int | None = None,
) -> LocalUpdate:
    """:func:`local_train` under record-level differential privacy (docs/privacy.md, :mod:`fedcl.privacy.dp`).

    DP-SGD (Opacus): each step samples every row with probability q (Poisson), computes one gradient per
    row, clips it to ``config.dp_clip``, sums and adds Gaussian noise, with the noise calibrated for the
    whole run. For the clipping to bound one row's influence, each row's loss reads that row alone:
    InfoNCE with the row's own feature-shuffled copies as negatives
    (:class:`~fedcl.privacy.dp.RowContrastiveLoss`), and no batch statistics, so embeddings are not
    normalised by the node's frame during training and the consistency term is ‖z − g‖²/dim (g is
    already a release). The statistics sent (μ_i, σ_i, n_i) are a Gaussian release of clipped
    embeddings under θ_i (:func:`~fedcl.privacy.dp.private_statistics`); the own-frame distance is
    computed from them; the losses are not sent.

    The encoder must act on the last axis of its input (the MLP does; with ``missing_mask`` it does not,
    and the config refuses the pair).

    ``generator`` is not used: the sampling, the augmentations, the negatives' permutations and the noise
    all come from :func:`~fedcl.privacy.dp.secret_generator`, never from the run's seed, which the server
    knows (it could subtract noise it can regenerate; and with the seed's stream, the views of every row
    after a sampled row would depend on that row). Runs under differential privacy are therefore not
    bit-for-bit reproducible.
    """
    import copy
    import warnings

    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    from fedcl.privacy import dp

    set_arrays(encoder, global_arrays)
    plan = dp.plan(config, len(x))
    secret = dp.secret_generator()
    model = GradSampleModule(copy.deepcopy(encoder), loss_reduction="sum")  # per-input gradients of a sum of losses
    optimiser = DPOptimizer(torch.optim.Adam(model.parameters(), lr=config.lr), noise_multiplier=plan.noise_multiplier,
                            max_grad_norm=plan.max_grad_norm, loss_reduction="mean", generator=secret,
                            secure_mode=True,  # Opacus 1.6: the sum of 4 draws per coordinate (no csprng needed)
                            expected_batch_size=max(1, round(plan.sample_rate * len(x))))
    contrastive = dp.RowContrastiveLoss(config.temperature)
    g = None if reference is None else torch.as_tensor(reference, dtype=torch.float32)

    model.train()
    for _ in range(plan.steps_per_round):
        rows = x[torch.rand(len(x), generator=secret) < plan.sample_rate]  # Poisson sampling, secret
        optimiser.zero_grad(set_to_none=True)
        if len(rows):
            # Secret randomness for the views too: with the public seed's stream, a row's draws would depend on
            # how many sampled rows come before it, so one row more would change every later row's views.
            augmented = (augment(rows, config.mask_prob, config.noise_std, secret),
                         augment(rows, config.mask_prob, config.noise_std, secret))
            views = dp.row_views(rows, augmented, secret)  # (rows, V, features), from each row alone
            # The MLP's layers act on the last axis, so a row's V views stay one sample for Opacus: its
            # per-sample gradient is the row's, all views summed, and clipping bounds the row as a whole.
            z = model(views)  # (rows, V, dim)
            per_row = contrastive(z)  # (rows,)
            if config.consistency_weight > 0 and g is not None:
                per_row = per_row + config.consistency_weight * 0.5 * (
                    ((z[:, 0] - g) ** 2).mean(dim=1) + ((z[:, 1] - g) ** 2).mean(dim=1))
            with warnings.catch_warnings():  # Opacus' hooks on a model whose inputs need no gradient: expected
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                per_row.sum().backward()
            # Opacus clips whatever its first axis holds: it must be the rows, or the bound is per view.
            assert all(p.grad_sample.shape[0] == len(rows) for p in model.parameters() if p.requires_grad)
        else:
            dp.no_rows_gradients(model.parameters())
        optimiser.step()  # clip each row's gradient to C, sum, add N(0, (σC)²), divide by the expected batch

    set_arrays(encoder, get_arrays(model._module))
    mean, std, count = dp.private_statistics(embed(encoder, x), plan.embedding_clip, plan.stats_noise_multiplier,
                                             secret)
    # The own-frame distance mean ‖(z − g)/σ‖²/dim is 1 + ‖(μ − g)/σ‖²/dim: a function of the release.
    distance = 1.0 if g is None else 1.0 + float((((mean - g) / std) ** 2).mean())
    return LocalUpdate(
        delta=[new - old for new, old in zip(get_arrays(encoder), global_arrays)],
        n_samples=count,
        mean_embedding=mean.numpy().astype(np.float64),
        distance=distance,
        loss=float("nan"),
        contrastive=float("nan"),
        std_embedding=std.numpy().astype(np.float64),
        epsilon=plan.epsilon(config.rounds if round_ is None else min(round_, config.rounds)),
    )
