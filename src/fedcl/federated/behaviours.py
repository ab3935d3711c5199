"""Simulated faulty and malicious nodes: what a node sends the server instead of its honest update.

Each behaviour takes the node's honest :class:`LocalUpdate`, the g it was sent, a random generator
and what the node knows of the round (a :class:`RoundContext`), and returns the update it sends.
(A noisy node is honest about corrupted data: that is a data corruption, see :mod:`fedcl.data`,
not a behaviour.)

The first five are naive: they forge from their own update alone. The adaptive ones work under the
strong threat model of the robust-aggregation literature: the attackers collude, know the server's
rule, and see every update of the round as computed honestly (the context). They all send the same
forged Δθ, and they lie in their statistics within what a screen accepts (:func:`claim_typical`).

- ``alie``, "a little is enough" (Baruch et al., NeurIPS 2019): mean − z·std, coordinate-wise, with
  z the largest that keeps the forged value inside the spread a majority of honest values shows.
- ``ipm``, ``ipm-large``, inner-product manipulation (Xie et al., UAI 2020): −ε · mean, ε = 0.5 or 10,
  so that the aggregate's inner product with the honest mean shrinks or turns negative.
- ``min-max``, ``min-sum`` (Shejwalkar & Houmansadr, NDSS 2021): mean + γ·p with p = −std and the
  largest γ whose maximum (sum of squared) distance to the honest updates stays within the largest
  an honest update has.
- ``mimic`` (Karimireddy et al., ICLR 2022): every attacker copies one honest node, the one most
  unlike the rest along the honest updates' main direction of variation, to over-weight its data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from scipy.stats import norm

from fedcl.federated.compress import unflatten
from fedcl.federated.local import LocalUpdate
from fedcl.federated.robust import flat_updates

SCALE = 10.0  # the scaled attack's factor
RANDOM_STD = 1.0  # per-parameter std of a random update: weights are ~0.1, so this drowns the model
IPM_EPSILON = 0.5  # Xie et al.'s small ε: the aggregate still points the honest way, only shorter
IPM_LARGE_EPSILON = 10.0  # large ε: 2 of 10 attackers turn a plain mean around
MAX_GAMMA = 1e6  # min-max / min-sum search bound; a larger γ is never feasible for finite updates
BISECTIONS = 50  # γ to ~1e-15 of its bracket


@dataclass(frozen=True)
class RoundContext:
    """What the misbehaving nodes know when they choose what to send (the strong threat model).

    Attributes
    ----------
    honest : tuple of LocalUpdate
        The updates the honest nodes of the round send.
    colluders : tuple of LocalUpdate
        The updates the misbehaving nodes of the round computed honestly, before forging (the
        node's own included).
    rule : str
        The server's aggregation rule (an ``--aggregation`` name), for attacks tailored to it.
    """

    honest: tuple[LocalUpdate, ...]
    colluders: tuple[LocalUpdate, ...]
    rule: str

    @property
    def benign(self) -> tuple[LocalUpdate, ...]:
        """Every update of the round as computed honestly: what the attackers' statistics are taken on."""
        return self.honest + self.colluders

    @property
    def n_nodes(self) -> int:
        return len(self.honest) + len(self.colluders)

    @property
    def n_attackers(self) -> int:
        return len(self.colluders)


class Behaviour(Protocol):
    """What a node sends instead of ``update``; ``context`` is None outside a round (naive behaviours ignore it)."""

    def __call__(self, update: LocalUpdate, reference: np.ndarray | None, rng: np.random.Generator,
                 context: RoundContext | None = None) -> LocalUpdate: ...


def free_rider(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Returns the model it was sent (Δθ = 0) and keeps its statistics, to look like it trained."""
    return replace(update, delta=[np.zeros_like(d) for d in update.delta])


def sign_flip(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends −Δθ: pushes the model away from what the data say, at an honest update's norm."""
    return replace(update, delta=[-d for d in update.delta])


def scaled(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends 10 · Δθ: one node's update outweighs everyone's under plain averaging."""
    return replace(update, delta=[SCALE * d for d in update.delta])


def random_update(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends Gaussian noise instead of an update."""
    return replace(update, delta=[rng.normal(0.0, RANDOM_STD, d.shape).astype(d.dtype) for d in update.delta])


def lying(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Claims to sit exactly on g (μ_i = g, and d_i = 0 in its own frame) to earn a large dynamic weight,
    while sending the most damaging of the forged updates above: −10 · Δθ. (The server now measures
    d_i itself from μ_i and σ_i, so the forged d_i buys nothing and μ_i = g only part of it.)"""
    claimed_mean = update.mean_embedding if reference is None else np.array(reference, dtype=np.float64)
    poisoned = [-SCALE * d for d in update.delta]
    return replace(update, delta=poisoned, distance=0.0, mean_embedding=claimed_mean)


def flatten(updates) -> np.ndarray:
    """Each update's Δθ as one float64 vector: (nodes, parameters)."""
    return flat_updates([u.delta for u in updates])


def _need(context: RoundContext | None, name: str) -> RoundContext:
    if context is None:
        raise ValueError(f"the {name} attack needs the round's context (run it through run_federation)")
    return context


def claim_typical(update: LocalUpdate, delta: np.ndarray, context: RoundContext) -> LocalUpdate:
    """``update`` sending the flat ``delta``, with the statistics of a typical honest node.

    μ_i and σ_i: the coordinate-wise medians of the honest ones, so d_i ≈ 0 (the guarded rule floors d
    at the median, so this buys a typical node's weight, the most it gives); distance and losses: the
    medians; row count: the largest honest one (FedAvg weighs by it, and a real node is as large).
    """
    peers = context.honest or context.colluders

    def median(field: str):
        return np.median([np.asarray(getattr(u, field), dtype=np.float64) for u in peers], axis=0)

    return replace(update, delta=unflatten(delta, update.delta), n_samples=max(u.n_samples for u in peers),
                   mean_embedding=median("mean_embedding"), std_embedding=median("std_embedding"),
                   distance=float(median("distance")), loss=float(median("loss")),
                   contrastive=float(median("contrastive")))


def alie_z(n_nodes: int, n_attackers: int) -> float:
    """Baruch et al.'s z_max: with s = ⌊n/2 + 1⌋ − f honest nodes to win over for a majority,
    z = Φ⁻¹((n − s)/n). (s is at least 1: attackers who are a majority need no stealth.)"""
    s = max(n_nodes // 2 + 1 - n_attackers, 1)
    return float(norm.ppf((n_nodes - s) / n_nodes))


def alie(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends mean − z_max · std of the round's honest updates, coordinate-wise (Baruch et al. 2019)."""
    context = _need(context, "alie")
    benign = flatten(context.benign)
    forged = benign.mean(axis=0) - alie_z(context.n_nodes, context.n_attackers) * benign.std(axis=0)
    return claim_typical(update, forged, context)


def inner_product_manipulation(epsilon: float) -> Callable:
    """The IPM attack with factor ε: sends −ε · the mean of the round's honest updates (Xie et al. 2020)."""
    def ipm(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
        context = _need(context, "ipm")
        return claim_typical(update, -epsilon * flatten(context.benign).mean(axis=0), context)
    ipm.__doc__ = f"Sends −{epsilon:g} · the mean of the round's honest updates."
    return ipm


def largest_gamma(fits: Callable[[float], bool]) -> float:
    """The largest γ ≥ 0 with ``fits(γ)``, given that ``fits`` holds on an interval [0, γ*]:
    doubling until it fails, then bisection."""
    low, high = 0.0, 1.0
    while fits(high):
        if high >= MAX_GAMMA:
            return high
        low, high = high, 2 * high
    for _ in range(BISECTIONS):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def _squared_distances(points: np.ndarray) -> np.ndarray:
    """‖x_i − x_j‖² for every pair of rows: (n, n)."""
    sq = (points**2).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * points @ points.T, 0.0)


def min_max_update(benign: np.ndarray) -> np.ndarray:
    """mean − γ·std with the largest γ that keeps its distance to every honest update within the
    largest distance between two honest ones (Shejwalkar & Houmansadr's min-max). The constraint is
    convex in γ and holds at γ = 0 (the mean lies in the honest updates' hull), hence the bisection."""
    centre, direction = benign.mean(axis=0), -benign.std(axis=0)
    bound = _squared_distances(benign).max()
    gamma = largest_gamma(lambda g: ((benign - centre - g * direction) ** 2).sum(axis=1).max() <= bound)
    return centre + gamma * direction


def min_sum_update(benign: np.ndarray) -> np.ndarray:
    """mean − γ·std with the largest γ that keeps its sum of squared distances to the honest updates
    within the largest such sum an honest update has (Shejwalkar & Houmansadr's min-sum)."""
    centre, direction = benign.mean(axis=0), -benign.std(axis=0)
    bound = _squared_distances(benign).sum(axis=1).max()
    gamma = largest_gamma(lambda g: ((benign - centre - g * direction) ** 2).sum() <= bound)
    return centre + gamma * direction


def min_max(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends the min-max update of the round's honest updates (see :func:`min_max_update`)."""
    context = _need(context, "min-max")
    return claim_typical(update, min_max_update(flatten(context.benign)), context)


def min_sum(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends the min-sum update of the round's honest updates (see :func:`min_sum_update`)."""
    context = _need(context, "min-sum")
    return claim_typical(update, min_sum_update(flatten(context.benign)), context)


def mimicked(honest: tuple[LocalUpdate, ...]) -> int:
    """Index of the honest node to copy: the one farthest from the honest mean along the first
    principal direction of the honest updates (Karimireddy et al.'s choice of whom to mimic)."""
    points = flatten(honest)
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # vt[0]: the direction of most variance
    return int(np.argmax(np.abs(centred @ vt[0])))


def mimic(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends an exact copy of one honest node's update, statistics included (Karimireddy et al. 2022):
    nothing to screen out, but that node's data weigh 1 + f times."""
    context = _need(context, "mimic")
    if not context.honest:
        return update  # nobody to copy: its own honest update is as good a copy as any
    return context.honest[mimicked(context.honest)]


def boost_within_clip(update: LocalUpdate, reference, rng, context=None) -> LocalUpdate:
    """Sends its own Δθ rescaled to the median honest norm (the largest the guarded rule's clip lets
    through unchanged), with typical statistics: how the targeted attack's poisoned update gets
    the most pull a screen allows."""
    context = _need(context, "boosted")
    own = flatten([update])[0]
    cap = np.median(np.linalg.norm(flatten(context.honest or context.colluders), axis=1))
    norm_ = np.linalg.norm(own)
    return claim_typical(update, own * (cap / norm_ if norm_ > 0 else 1.0), context)


class _Behaviours(dict):
    """Behaviours by name; the display names of the first results ("scaled x10", ...) find theirs too."""

    def __missing__(self, name: str) -> Behaviour:
        if name in ALIASES:
            return self[ALIASES[name]]
        raise KeyError(name)


ALIASES = {"scaled x10": "scaled", "lying d=0 + flip x10": "lying"}  # display name -> name

BEHAVIOURS: dict[str, Behaviour] = _Behaviours({
    "free-rider": free_rider,
    "sign-flip": sign_flip,
    "scaled": scaled,
    "random": random_update,
    "lying": lying,
    "alie": alie,
    "ipm": inner_product_manipulation(IPM_EPSILON),
    "ipm-large": inner_product_manipulation(IPM_LARGE_EPSILON),
    "min-max": min_max,
    "min-sum": min_sum,
    "mimic": mimic,
})
ADAPTIVE = ("alie", "ipm", "ipm-large", "min-max", "min-sum", "mimic")  # the ones that read the round's context
