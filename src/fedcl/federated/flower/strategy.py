"""FedCL's server rule as a Flower strategy: the same plain functions as the in-process runner."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.federated.compress import Broadcast, Packed, fingerprint
from fedcl.federated.flower._records import (
    ARRAYS_KEY,
    BASE_KEY,
    TARGET_KEY,
    config_record,
    read_delta,
    read_node_record,
    read_scalar_records,
    read_update_records,
)
from fedcl.federated.runner import aggregate_round, node_private_record, round_record


def _check_distinct_nodes(identities: list[tuple[str, int]]) -> None:
    # Two nodes with one name draw the same random stream and overwrite each other in the history;
    # two with one partition id make the aggregation order depend on which reply arrived first.
    for position, label, fix in ((0, "node name", "each node needs a name of its own (its data folder's "
                                                  "name, or node-name in its node config)"),
                                 (1, "partition-id", "each node needs a partition-id of its own")):
        values = [identity[position] for identity in identities]
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"several nodes replied with {label} {', '.join(repeated)}: {fix}")


class FedCLStrategy(FedAvg):
    """FedAvg's sampling and messaging with fedcl's aggregation.

    Each round it broadcasts θ and g; from the replies it computes w_i (dynamic or by sample count),
    θ ← θ + Σ w_i Δθ_i / Σ w_i and g ← Σ w_i μ_i / Σ w_i with
    :func:`fedcl.federated.runner.aggregate_round`. Replies are put in partition-id order first, so
    the floating-point sums match the in-process runner's (whose order is the data folder's, the
    order ``fedcl flower simulate`` numbers nodes in), and the history names each node by its
    name, as the in-process runner does. A round whose replies share a name or a partition id
    raises :class:`~fedcl.errors.ConfigError`.

    With ``config.secure_aggregation`` the train replies carry only clear scalars, and
    ``aggregate_train`` runs the masked sums as extra message exchanges within the round
    (:class:`~fedcl.federated.flower.secure.FlowerSecureRound`, :func:`fedcl.privacy.secure_step`):
    the strategy learns Σ w_i [Δθ_i, μ_i], never one node's update.

    Under node-level differential privacy (``config.dp_level`` "node") it runs DP-FedAvg
    (:class:`fedcl.privacy.node_dp.NodeLevelDP`): each round asks a Poisson sample of the connected
    nodes, which reply with θ_i alone, and adds the calibrated noise to the sum of the clipped updates
    over a fixed denominator q·N, N being the fleet when the run starts (the enrolled nodes under a
    registry, else those connected at its first round), kept on resume; the history holds the ε
    spent, not who was sampled.

    Parameters
    ----------
    config : FedCLConfig
    reference : ndarray, optional
        g to start from (a resumed run); None before the first round.
    on_round : callable, optional
        Called with (round, arrays, g, history record) after each aggregation (checkpoints, logs).
    round_offset : int
        Rounds already done (a resumed run): round numbers, and so the nodes' random streams,
        continue where they stopped.
    timeout : float, optional
        Seconds each secure-aggregation exchange waits for replies (the round timeout).
    sample_fraction : float
        Share of the connected nodes asked to train each round (at least ``min_train_nodes``), drawn
        from the run's seed and the round number, so a rerun with the same connected nodes asks the same ones.
    fleet_size : int, optional
        N of node-level DP, as planned before a resume; None: from the fleet at the first round.
    **kwargs
        FedAvg's sampling options (``min_available_nodes``, ``min_train_nodes``, ...).
    """

    def __init__(self, config: FedCLConfig, reference: np.ndarray | None = None,
                 on_round: Callable[[int, list[np.ndarray], np.ndarray, dict], None] | None = None,
                 round_offset: int = 0, timeout: float | None = None, sample_fraction: float = 1.0,
                 fleet_size: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sample_fraction = sample_fraction
        self.config = config
        self.reference = reference
        self.on_round = on_round
        self.round_offset = round_offset
        self.timeout = timeout
        self.history: list[dict] = []
        self.last_secure_round = None  # FlowerSecureRound of the last round under secure aggregation: the server's view
        self._theta: list[np.ndarray] = []  # the server's θ
        self._sent: list[np.ndarray] = []  # the θ̂ nodes train from: θ, or under compression what the broadcasts add up to
        self._grid: Grid | None = None
        self._broadcast: Broadcast | None = None
        # Nodes that hold the last θ̂ (they replied to the last round); None: every node, since before the
        # first round of a fresh run each can build the seeded initial encoder the server starts from.
        self._in_sync: set[int] | None = None if round_offset == 0 else set()
        self.fleet_size = fleet_size  # node-level DP's N
        self._node_dp = None  # NodeLevelDP, planned at the first round, once the fleet is known

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._theta, self._grid = arrays.to_numpy_ndarrays(), grid  # the grid: secure aggregation's extra exchanges
        record = config_record(self.config, self.reference)
        record.update(config)
        messages = self._sampled(list(super().configure_train(server_round + self.round_offset, arrays, record, grid)),
                                 server_round + self.round_offset)
        if self.config.node_differential_privacy:
            messages = self._privately_sampled(messages, grid)
        if not self.config.compression_bits:
            self._sent = self._theta
            return messages
        return self._compressed(messages)

    def _sampled(self, messages: list[Message], server_round: int) -> list[Message]:
        """This round's share of ``messages`` (one per connected node), seeded by the run's seed and the round."""
        if self.sample_fraction == 1 or not messages:
            return messages
        nodes = sorted(m.metadata.dst_node_id for m in messages)
        k = min(len(nodes), max(self.min_train_nodes, math.ceil(self.sample_fraction * len(nodes) - 1e-9)))
        # By position: Flower's node ids are 64-bit and numpy would turn a mix of them into floats
        chosen = {nodes[i] for i in np.random.default_rng([self.config.seed, server_round]).choice(len(nodes), k,
                                                                                                  replace=False)}
        logging.getLogger("flwr").info("round %s: %d of %d nodes asked to train (sample-fraction %g)", server_round, k,
                                       len(nodes), self.sample_fraction)
        return [m for m in messages if m.metadata.dst_node_id in chosen]

    def _privately_sampled(self, messages: list[Message], grid: Grid) -> list[Message]:
        """Node-level DP: each connected node asked with probability q, from OS randomness (kept secret)."""
        if self._node_dp is None:
            from fedcl.privacy.node_dp import NodeLevelDP

            if self.fleet_size is None:
                enrolled = getattr(grid, "enrolled", None)  # EnrolledGrid: the registry is the fleet
                self.fleet_size = len(enrolled) if enrolled is not None else len(messages)
            self._node_dp = NodeLevelDP.plan(self.config, self.fleet_size)
        return [m for m, asked in zip(messages, self._node_dp.sampled(len(messages))) if asked]

    def _compressed(self, messages: list[Message]) -> list[Message]:
        """The round's train messages with θ̂'s packed delta for nodes in sync, θ̂ in full for the others."""
        if self._broadcast is None:
            self._broadcast = Broadcast(self._theta, self.config.compression_bits)
        base = fingerprint(self._broadcast.held)
        packed = self._broadcast.step(self._theta)
        self._sent = self._broadcast.held
        target = fingerprint(self._sent)
        out = []
        for message in messages:
            node = message.metadata.dst_node_id
            delta = self._in_sync is None or node in self._in_sync
            settings = ConfigRecord({**message.content["config"], BASE_KEY: base if delta else "", TARGET_KEY: target})
            arrays = ArrayRecord([packed.codes, packed.scales] if delta else self._sent)
            out.append(Message(content=RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: settings}),
                               message_type=message.metadata.message_type, dst_node_id=node))
        return out

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        # Detectors are fitted and evaluated where the data are (fedcl evaluate), not per round.
        return []

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.round_offset
        secure, private = self.config.secure_aggregation, self.config.node_differential_privacy
        # Secure replies carry no ArrayRecord, node-level private ones no MetricRecord: FedAvg's check wants both.
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=not (secure or private))
        if self.config.compression_bits:
            valid = [m for m in valid if self._decodes(m, server_round)]
        self._in_sync = {m.metadata.src_node_id for m in valid}  # they hold this round's θ̂
        if private:  # a round nobody answered still adds (and spends) its noise
            return self._private_step(server_round, valid)
        if not valid:
            return None, None
        identities = [read_node_record(m.content) for m in valid]  # (name, partition id)
        _check_distinct_nodes(identities)
        order = sorted(range(len(valid)), key=lambda i: identities[i][1])  # partition ids are distinct
        names = [identities[i][0] for i in order]
        if secure:
            from fedcl.privacy import Aborted

            updates = [read_scalar_records(valid[i].content) for i in order]
            try:
                step, distances = self._secure_step(server_round, [valid[i].metadata.src_node_id for i in order],
                                                    [u.n_samples for u in updates])
            except Aborted as aborted:  # too few nodes left to hide each one's update: θ and g stay
                logging.getLogger("flwr").warning("round %s skipped: %s", server_round, aborted)
                return None, None
        else:
            updates = [read_update_records(valid[i].content, self._sent, self.config.compression_bits) for i in order]
            step, distances = aggregate_round(self._theta, updates, self.config.aggregation), None
        arrays, self.reference = step.arrays, step.reference
        record = round_record(server_round, names, updates, step, distances)
        self.history.append(record)
        if self.on_round is not None:
            self.on_round(server_round, arrays, self.reference, record)
        return ArrayRecord(arrays), MetricRecord({"loss": record["loss"], "nodes": len(valid)})

    def _private_step(self, server_round: int, valid: list[Message]) -> tuple[ArrayRecord, None]:
        """DP-FedAvg's step over the replies; neither the history nor the returned metrics say who answered."""
        _check_distinct_nodes([read_node_record(m.content) for m in valid])
        deltas = [d for d in (self._private_delta(m, server_round) for m in valid) if d is not None]
        step = self._node_dp.step(self._theta, deltas)
        record = node_private_record(server_round, self._node_dp.epsilon(server_round))
        self.reference = None
        self.history.append(record)
        if self.on_round is not None:
            self.on_round(server_round, step.arrays, None, record)
        return ArrayRecord(step.arrays), None

    def _private_delta(self, reply: Message, server_round: int) -> list[np.ndarray] | None:
        """Δθ_i of a node-level private reply; None (left out, with a warning) when it does not hold θ's arrays."""
        try:
            delta = read_delta(reply.content, self._sent, self.config.compression_bits)
            if [d.shape for d in delta] != [a.shape for a in self._sent]:
                raise ValueError("its arrays do not have θ's shapes")
            return delta
        except (KeyError, ValueError) as malformed:
            logging.getLogger("flwr").warning("round %s: a reply was left out: %s", server_round, malformed)
            return None

    def _decodes(self, reply: Message, server_round: int) -> bool:
        """Whether a compressed reply holds a well-formed packed update; one that does not is left out of
        the round (with a warning), as a failed reply is, rather than stopping the run."""
        try:
            Packed.from_wire(reply.content[ARRAYS_KEY].to_numpy_ndarrays(), self.config.compression_bits,
                             sum(a.size for a in self._sent))
            return True
        except (KeyError, ValueError) as malformed:
            logging.getLogger("flwr").warning("round %s: reply of node %s left out: %s", server_round,
                                              reply.metadata.src_node_id, malformed)
            return False

    def _secure_step(self, server_round: int, node_ids: list[int], counts: list[int]):
        """The masked sums of :func:`fedcl.privacy.secure_step` over this round's nodes, in partition order."""
        from fedcl.federated.flower.secure import FlowerSecureRound  # cryptography loads only when it is used
        from fedcl.privacy import secure_step

        driver = FlowerSecureRound(self._grid, node_ids, server_round, self.timeout)
        self.last_secure_round = driver
        return secure_step(self._theta, counts, self.config.aggregation, driver.masked_sum, driver.release_distances)
