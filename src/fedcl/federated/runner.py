"""In-process federated runner: no servers, seeded, deterministic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from torch import Tensor

from fedcl.config import FedCLConfig
from fedcl.federated import robust
from fedcl.federated.aggregate import (
    ServerStep,
    apply_updates,
    divergences,
    dynamic_weights,
    reference_vector,
    sample_weights,
)
from fedcl.federated.behaviours import Behaviour, RoundContext
from fedcl.federated.compress import Broadcast, compressed_update
from fedcl.federated.local import LocalUpdate, local_train, node_generator, trainable_parameters
from fedcl.federated.params import get_arrays
from fedcl.model import initial_encoder
from fedcl.seeding import node_rng


@dataclass
class FederationResult:
    """Global encoder parameters, global reference g and the per-round history."""

    arrays: list[np.ndarray]
    reference: np.ndarray | None  # None under node-level DP (no statistics are released)
    history: list[dict] = field(default_factory=list)


@dataclass
class FederationState:
    """What a federation needs to go on after ``round`` rounds exactly as if it had not stopped (a
    checkpoint): θ and g, and under compression θ̂ and each node's residual, under node-level DP the
    server's secret generator. Every other draw is seeded by round."""

    round: int
    arrays: list[np.ndarray]
    reference: np.ndarray | None
    held: list[np.ndarray] | None = None
    residuals: dict[str, np.ndarray] = field(default_factory=dict)
    dp_generator: Tensor | None = None


def round_record(round_: int, names: list[str], updates: list[LocalUpdate], step: "ServerStep",
                 distances: list[float | None] | None = None) -> dict:
    """One round of history: mean losses, ‖g‖, and per node its loss, distance d_i (shared frame, what
    the weights use), the distance it measured in its own σ units (a diagnostic), its weight, and
    whether it was set aside and why. ``distances``: the d_i the nodes released under secure
    aggregation (None where the server cannot know it), instead of d_i from their μ_i and σ_i. Under
    differential privacy, also the ε each node has spent (and the largest, ``epsilon``); the losses
    are then NaN, since nodes do not send them."""
    counts = [u.n_samples for u in updates]
    d = distances if distances is not None else divergences([u.mean_embedding for u in updates],
                                                            [u.std_embedding for u in updates])
    record = {
        "round": round_,
        "loss": float(np.average([u.loss for u in updates], weights=counts)),
        "contrastive": float(np.average([u.contrastive for u in updates], weights=counts)),
        "reference_norm": float(np.linalg.norm(step.reference)),
        "nodes": {
            name: {"loss": u.loss, "distance": None if d_i is None else float(d_i), "own_frame_distance": u.distance,
                   "weight": float(w), "excluded": reason is not None, "reason": reason}
            for name, u, d_i, w, reason in zip(names, updates, d, step.weights, step.reasons)
        },
    }
    spent = [u.epsilon for u in updates if u.epsilon is not None]
    if spent:  # differential privacy: what each node has spent so far, per its accountant (fedcl.privacy.dp)
        record["epsilon"] = max(spent)
        for name, u in zip(names, updates):
            record["nodes"][name]["epsilon"] = u.epsilon
    return record


def node_private_record(round_: int, epsilon: float) -> dict:
    """One round of history under node-level DP: the ε the run has spent, nothing else. Which nodes were
    sampled must stay secret (the amplification by sampling rests on it), and they release nothing but
    their clipped updates."""
    return {"round": round_, "epsilon": epsilon}


ROBUST_RULES = {
    "dynamic-guarded": robust.guarded_dynamic_rule,
    "median": robust.median_rule,
    "trimmed-mean": robust.trimmed_mean_rule,
    "krum": partial(robust.krum_rule, multi=False),
    "multi-krum": partial(robust.krum_rule, multi=True),
}


def aggregate_round(arrays: list[np.ndarray], updates: list[LocalUpdate], aggregation: str) -> ServerStep:
    """One server step: new θ, new g, each node's weight, and why any node was set aside."""
    if aggregation in ROBUST_RULES:
        return ROBUST_RULES[aggregation](arrays, updates)
    if aggregation == "dynamic":
        weights = dynamic_weights(divergences([u.mean_embedding for u in updates], [u.std_embedding for u in updates]))
    else:
        weights = sample_weights([u.n_samples for u in updates])
    new_arrays = apply_updates(arrays, [u.delta for u in updates], weights)
    reference = reference_vector([u.mean_embedding for u in updates], weights)
    return ServerStep(new_arrays, reference, weights, [None] * len(updates))


def sent_updates(computed: dict[str, LocalUpdate], behaviours: Mapping[str, Behaviour], reference: np.ndarray | None,
                 config: FedCLConfig, round_: int) -> list[LocalUpdate]:
    """What each node of the round sends: its honest update, or what its behaviour makes of it, given
    every update of the round (colluding attackers see the honest ones, see :class:`RoundContext`)."""
    context = RoundContext(honest=tuple(u for name, u in computed.items() if name not in behaviours),
                           colluders=tuple(u for name, u in computed.items() if name in behaviours),
                           rule=config.aggregation)
    return [behaviours[name](u, reference, node_rng(config.seed, name, round_), context) if name in behaviours else u
            for name, u in computed.items()]


def _on_the_wire(name: str, update: LocalUpdate, residuals: dict[str, np.ndarray], bits: int) -> LocalUpdate:
    """The update as the server decodes it from ``bits`` bits per parameter; the node keeps its residual."""
    decoded, _, residuals[name] = compressed_update(update, residuals.get(name), bits)
    return decoded


def participants(n_nodes: int, dropout: float, seed: int, round_: int) -> np.ndarray:
    """Which nodes answer in a round: each misses it with probability ``dropout``, at least one answers."""
    rng = np.random.default_rng([seed, round_, 31337])
    present = rng.random(n_nodes) >= dropout
    if not present.any():
        present[rng.integers(n_nodes)] = True
    return present


def run_federation(
    node_rows: dict[str, Tensor],
    config: FedCLConfig,
    on_round: Callable[[dict], None] | None = None,
    behaviours: Mapping[str, Behaviour] | None = None,
    dropout: float = 0.0,
    initial: list[np.ndarray] | None = None,
    on_updates: Callable[[int, list[np.ndarray], list[str], list[LocalUpdate]], None] | None = None,
    train_only: str | None = None,
    resume: FederationState | None = None,
    on_state: Callable[[FederationState], None] | None = None,
) -> FederationResult:
    """Train one encoder across nodes without moving their rows.

    Parameters
    ----------
    node_rows : dict of name -> Tensor of shape (n_i, n_features)
        Each node's scaled benign training rows (NaN = missing); they never leave ``local_train``.
    config : FedCLConfig
    on_round : callable, optional
        Called with each round's history record (for progress bars).
    behaviours : dict of name -> Behaviour, optional
        Simulated faulty or malicious nodes (:mod:`fedcl.federated.behaviours`): what they send
        instead of their honest update. Each round, every node trains first; then each behaviour
        sees the round's honest updates (:class:`~fedcl.federated.behaviours.RoundContext`).
    dropout : float, default=0
        Each node misses each round with this probability (seeded); the round aggregates the others.
    initial : list of ndarray, optional
        Parameters to start from (default: the seeded initial encoder), e.g. a federation's encoder
        that one node fine-tunes on its own rows.
    on_updates : callable, optional
        Called each round with (round, θ broadcast, node names, their updates): what a curious server
        receives (privacy audits, :mod:`fedcl.privacy.audit`).
    train_only : {"head", "input"}, optional
        Train only the encoder's last layer or its first (:func:`fedcl.federated.local.trainable_parameters`):
        with one node, a personal head or input layer; a design study measured both (docs/benchmark.md).
    resume : FederationState, optional
        Go on from this state (from ``on_state`` of an interrupted run with the same arguments): the
        result is the uninterrupted run's.
    on_state : callable, optional
        Called after each round with the state to resume from (checkpoints).

    With ``config.dp_level`` "node" and a finite ``config.dp_epsilon`` the server samples, clips and noises
    (DP-FedAvg, :mod:`fedcl.privacy.node_dp`). With ``config.secure_aggregation`` every round of two or
    more nodes aggregates masked updates (:func:`fedcl.privacy.secure_aggregate_round`); a federation of
    one node (a node's own encoder, a pooled reference) has nobody to hide its update from and aggregates
    in the clear.
    """
    for name, rows in node_rows.items():
        if len(rows) < 2:
            raise ValueError(f"node {name!r} has {len(rows)} training row(s); contrastive training needs at least 2")
    behaviours = dict(behaviours or {})
    if set(behaviours) - set(node_rows):
        raise ValueError(f"behaviours for unknown nodes: {sorted(set(behaviours) - set(node_rows))}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    n_features = next(iter(node_rows.values())).shape[1]
    encoder = initial_encoder(config, n_features)
    trainable_parameters(encoder, train_only)  # an unknown train_only fails here, before any round
    arrays = get_arrays(encoder) if initial is None else [a.copy() for a in initial]
    # Under compression nodes train from θ̂, the model the quantised broadcasts add up to; the server keeps θ.
    # A federation of one node (its own encoder, a pooled reference, fine-tuning) sends nothing anywhere.
    held = Broadcast(arrays, config.compression_bits) if config.compression_bits and len(node_rows) > 1 else None
    residuals: dict[str, np.ndarray] = {}
    reference = None  # no shared statistics before the first round
    node_dp = None
    if config.node_differential_privacy:
        if len(node_rows) < 2:  # the noised mean of one node is that node's update
            raise ValueError("node-level differential privacy needs at least 2 nodes")
        from fedcl.privacy.node_dp import NodeLevelDP

        node_dp = NodeLevelDP.plan(config, len(node_rows))
    done = 0
    if resume is not None:
        done, arrays, reference = resume.round, resume.arrays, resume.reference
        if held is not None:
            held.held, residuals = resume.held, dict(resume.residuals)
        if node_dp is not None:
            node_dp.generator.set_state(resume.dp_generator)
    history = []
    for round_ in range(done + 1, config.rounds + 1):
        present = participants(len(node_rows), dropout, config.seed, round_)
        if node_dp is not None:
            present &= node_dp.sampled()
        start = arrays if held is None else held.held
        computed = {name: local_train(encoder, start, rows, reference, config,
                                      node_generator(config.seed, name, round_), round_=round_,
                                      train_only=train_only)
                    for i, (name, rows) in enumerate(node_rows.items()) if present[i]}
        names = list(computed)
        if held is not None:  # attackers see the honest updates as the server decodes them, and send raw codes
            computed = {name: u if name in behaviours else _on_the_wire(name, u, residuals, config.compression_bits)
                        for name, u in computed.items()}
        updates = sent_updates(computed, behaviours, reference, config, round_)
        if held is not None:
            updates = [compressed_update(u, None, config.compression_bits)[0] if name in behaviours else u
                       for name, u in zip(names, updates)]
        if on_updates is not None:
            on_updates(round_, arrays, names, updates)
        if config.secure_aggregation and len(node_rows) > 1 and len(updates) < 2:
            continue  # a masked "sum" of one node is its update: the round is skipped, θ and g stay
        if node_dp is not None:  # a round nobody was sampled for still adds (and spends) its noise
            step = node_dp.step(arrays, [u.delta for u in updates])
            record = node_private_record(round_, node_dp.epsilon(round_))
        else:
            if config.secure_aggregation and len(node_rows) > 1:
                from fedcl.privacy import secure_aggregate_round  # cryptography loads only when it is used

                step, distances = secure_aggregate_round(arrays, updates, config.aggregation)
            else:
                step, distances = aggregate_round(arrays, updates, config.aggregation), None
            record = round_record(round_, names, updates, step, distances)
        arrays, reference = step.arrays, step.reference
        if held is not None:
            held.step(arrays)
        history.append(record)
        if on_round is not None:  # first: a history written ahead of a checkpoint is trimmed on resume
            on_round(record)
        if on_state is not None:
            on_state(FederationState(round_, arrays, reference, None if held is None else held.held, residuals,
                                     None if node_dp is None else node_dp.generator.get_state()))
    return FederationResult(arrays=arrays, reference=reference, history=history)
