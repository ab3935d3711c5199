"""The dynamic and FedAvg server steps under secure aggregation: the server learns weighted sums only."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

from fedcl.config import SECURE_AGGREGATIONS
from fedcl.errors import ConfigError
from fedcl.federated.aggregate import ServerStep, apply_updates, dynamic_weights, sample_weights
from fedcl.federated.local import LocalUpdate
from fedcl.privacy.secagg import secure_sum

__all__ = ["MaskedSum", "ReleaseDistances", "node_distance", "secure_aggregate_round", "secure_step", "stats_vector",
           "update_vector"]


def node_distance(mean: np.ndarray, std: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> float:
    """d_i = (‖μ_i − m‖² + ‖σ_i − s‖²) / ‖s‖², the formula of
    :func:`~fedcl.federated.aggregate.divergences`, computed by the node against a frame (m, s) it is sent."""
    return float((np.sum((mean - centre) ** 2) + np.sum((std - scale) ** 2)) / max(float(np.sum(scale**2)), 1e-12))


def stats_vector(update: LocalUpdate) -> np.ndarray:
    """What a node puts in the first masked sum of ``dynamic``: [μ_i, σ_i]."""
    return np.concatenate([update.mean_embedding, update.std_embedding])


def update_vector(update: LocalUpdate, weight: float) -> np.ndarray:
    """What a node puts in the weighted masked sum: w_i [Δθ_i (raveled), μ_i]. Pre-scaled by w_i ≤ 1, so
    the sum stays inside the fixed-point range and the server sees only Σ."""
    return weight * np.concatenate([np.ravel(d) for d in update.delta] + [update.mean_embedding])


#: One masked sum over some nodes: (kind, {protocol id: w_i}) -> (Σ, ids of the nodes whose vectors are
#: in Σ). Kind "stats" sums :func:`stats_vector` (weights unused), "update" sums :func:`update_vector`.
MaskedSum = Callable[[str, dict[int, float]], tuple[np.ndarray, list[int]]]
#: The nodes named release their d_i against the frame (m, s): (m, s, ids) -> {id: d_i} of those that did.
ReleaseDistances = Callable[[np.ndarray, np.ndarray, list[int]], dict[int, float]]


def secure_step(arrays: list[np.ndarray], counts: Sequence[int], aggregation: str, masked_sum: MaskedSum,
                release_distances: ReleaseDistances) -> tuple[ServerStep, list[float | None]]:
    """The server's side of :func:`secure_aggregate_round`, whatever carries the messages.

    Nodes are numbered 1..len(counts) (protocol ids, in the order of ``counts``, their n_i). A node
    missing from a sum's survivors or from the released distances is out for the rest of the round
    (weight 0, reason given); ``fedavg`` weights stay those of all n_i, renormalised over the kept.
    """
    if aggregation not in SECURE_AGGREGATIONS:
        raise ConfigError(f"aggregation {aggregation!r} cannot run under secure aggregation; use dynamic or fedavg")
    ids = list(range(1, len(counts) + 1))
    if aggregation == "dynamic":
        total, survivors = masked_sum("stats", dict.fromkeys(ids, 1.0))
        dim = len(total) // 2
        frame = total / len(survivors)  # the server's only view of μ and σ: their means
        released = release_distances(frame[:dim], frame[dim:], survivors)
        distances = [released.get(i) for i in ids]
        present = np.array([d is not None for d in distances])
        weights = np.zeros(len(ids))
        weights[present] = dynamic_weights([d for d in distances if d is not None])
    else:
        distances, weights = [None] * len(ids), sample_weights(counts)
        present = np.ones(len(ids), dtype=bool)

    total, survivors = masked_sum("update", {i: float(w) for i, w, p in zip(ids, weights, present) if p})
    kept = np.isin(np.array(ids), survivors)
    mean = total / weights[kept].sum()
    size = sum(np.size(a) for a in arrays)
    sizes = np.cumsum([np.size(a) for a in arrays])[:-1]
    delta = [d.reshape(np.shape(a)) for d, a in zip(np.split(mean[:size], sizes), arrays)]
    step = ServerStep(apply_updates(arrays, [delta], [1.0]), mean[size:],
                      np.where(kept, weights, 0) / weights[kept].sum(),
                      [None if k else "dropped out during secure aggregation" for k in kept])
    return step, distances


def secure_aggregate_round(arrays: list[np.ndarray], updates: Sequence[LocalUpdate], aggregation: str,
                           dropped: Collection[int] = ()) -> tuple[ServerStep, list[float | None]]:
    """One server step of ``dynamic`` or ``fedavg`` in which no node's Δθ_i, μ_i or σ_i is seen alone.

    ``dynamic`` takes two masked sums. First Σ [μ_i, σ_i]: the server sends back their means (m, s),
    and each node computes its d_i against that frame (:func:`node_distance`) and releases it. The
    clear rule's frame is the coordinate-wise *median* of the μ_i and σ_i, which masking cannot give;
    the two agree when there are two nodes, and the mean lets one forged μ_i move the frame. The
    server turns the d_i into w_i = 1/(1 + d_i) normalised and sends each node its w_i. ``fedavg``:
    nodes release n_i, and w_i = n_i / Σ n. Then the masked Σ w_i [Δθ_i, μ_i]; the server divides it
    by Σ w_i of the nodes whose vectors arrived: θ + Σ w_i Δθ_i / Σ w_i and g = Σ w_i μ_i / Σ w_i.
    The parties are in this process (:func:`~fedcl.privacy.secagg.secure_sum`); the Flower apps run
    the same :func:`secure_step` over messages.

    Parameters
    ----------
    arrays : list of ndarray
        θ sent at the start of the round.
    updates : sequence of LocalUpdate
        What each node holds; only the scalars named above leave it in the clear.
    aggregation : {"dynamic", "fedavg"}
    dropped : collection of int
        Positions in ``updates`` of nodes that drop after sharing keys for the second sum.

    Returns
    -------
    step : ServerStep
        Weights over the nodes that stayed (0 and a reason for the dropped).
    distances : list of float or None
        The d_i the nodes released (``dynamic``); None for ``fedavg``, where nothing reveals them.
    """
    def masked_sum(kind: str, weights: dict[int, float]) -> tuple[np.ndarray, list[int]]:
        vectors = {i: stats_vector(updates[i - 1]) if kind == "stats" else update_vector(updates[i - 1], w)
                   for i, w in weights.items()}
        result = secure_sum(vectors, dropped={i + 1 for i in dropped} if kind == "update" else set())
        return result.total, result.survivors

    def release_distances(centre: np.ndarray, scale: np.ndarray, ids: list[int]) -> dict[int, float]:
        return {i: node_distance(updates[i - 1].mean_embedding, updates[i - 1].std_embedding, centre, scale)
                for i in ids}

    return secure_step(arrays, [u.n_samples for u in updates], aggregation, masked_sum, release_distances)
