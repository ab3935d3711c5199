"""What crosses the wire, as Flower records: the run config, g, a node's update, statistics and identity."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedcl.config import FedCLConfig
from fedcl.federated.compress import Packed, applied, dequantise, fingerprint, unflatten
from fedcl.federated.flower.node_app import RELEASE_ACTION, SECURE_ACTIONS  # the ClientApp registers them (flwr only)
from fedcl.federated.local import LocalUpdate

REFERENCE_KEY = "reference"
#: Keys of a reply's RecordDict: θ_i, the node's statistics (numbers only) and who the node is.
ARRAYS_KEY, METRICS_KEY, NODE_KEY = "arrays", "metrics", "node"
#: The key of secure aggregation's records (its actions: :data:`.node_app.SECURE_ACTIONS`).
SECURE_KEY = "secagg"
#: Where a node keeps its update between the messages of a round under secure aggregation (``context.state``).
KEPT_UPDATE_KEY, KEPT_SCALARS_KEY = "fedcl-kept-update", "fedcl-kept-scalars"
#: Under compression: the config keys naming the θ̂ a broadcast delta applies to ("" for θ̂ in full) and the
#: θ̂ it gives; and where a node keeps θ̂ and its uplink residual between rounds (``context.state``).
BASE_KEY, TARGET_KEY = "model-base", "model-target"
HELD_KEY, RESIDUAL_KEY = "fedcl-held-model", "fedcl-residual"
#: Under acceptance_margin: the message type asking a node for its federation view, the reply's key for it,
#: and the prefix of the peers' views in an evaluate message (``peer:<node name>``).
RELEASE, VIEW_KEY, PEER_PREFIX = f"query.{RELEASE_ACTION}", "view", "peer:"


def config_record(config: FedCLConfig, reference: np.ndarray | None) -> ConfigRecord:
    """The run settings every node needs, plus g once the server has one."""
    values = {k: v for k, v in config.to_dict().items() if k != "data"}  # node paths are node-local
    if reference is not None:
        values[REFERENCE_KEY] = [float(v) for v in reference]
    return ConfigRecord(values)


def read_config_record(record: ConfigRecord) -> tuple[FedCLConfig, np.ndarray | None]:
    names = {f.name for f in fields(FedCLConfig)}
    config = FedCLConfig(**{k: v for k, v in record.items() if k in names})
    reference = np.asarray(record[REFERENCE_KEY], dtype=np.float64) if REFERENCE_KEY in record else None
    return config, reference


def _scalar_metrics(update: LocalUpdate) -> dict:
    scalars = {"num-examples": update.n_samples, "distance": update.distance, "loss": update.loss,
               "contrastive": update.contrastive}
    if update.epsilon is not None:  # differential privacy: the ε the node has spent (losses are NaN, not sent)
        scalars["epsilon"] = update.epsilon
    return scalars


def held_model(content: RecordDict, base: list[np.ndarray]) -> list[np.ndarray]:
    """θ̂ this round, from a broadcast under compression: θ̂ in full, or a packed delta applied to
    ``base``, the θ̂ the node holds (before its first round: the seeded initial encoder, which every
    node can build). ValueError when ``base`` is not the θ̂ the delta was taken against."""
    settings, arrays = content["config"], content["arrays"].to_numpy_ndarrays()
    base_print, bits = str(settings[BASE_KEY]), int(settings["compression_bits"])
    if not base_print:
        model = arrays
    else:
        if fingerprint(base) != base_print:
            raise ValueError("this node does not hold the model the server's compressed broadcast applies to "
                             "(it missed a round or restarted); the server sends the model in full next round")
        model = applied(base, Packed.from_wire(arrays, bits, sum(a.size for a in base)))
    if fingerprint(model) != str(settings[TARGET_KEY]):
        raise ValueError("the model rebuilt from the server's broadcast differs from the server's: refusing to train")
    return model


def update_records(update: LocalUpdate, global_arrays: list[np.ndarray], node_name: str,
                   partition_id: int, packed: Packed | None = None, statistics: bool = True) -> RecordDict:
    """A node's reply: its trained θ_i (or, under compression, its ``packed`` Δθ_i), n_i, mean
    embedding μ_i, d_i and losses, and its name and partition id. No rows. Without ``statistics``
    (node-level DP, which releases nothing else) only θ_i and who the node is.

    The name travels in a ConfigRecord (a MetricRecord holds numbers only); FedAvg's reply check
    and Flower's DP wrappers look only at the one ArrayRecord and the one MetricRecord.
    """
    local = [packed.codes, packed.scales] if packed is not None else \
        [g + d for g, d in zip(global_arrays, update.delta)]
    node = ConfigRecord({"node-name": node_name, "partition-id": partition_id})
    if not statistics:
        return RecordDict({ARRAYS_KEY: ArrayRecord(local), NODE_KEY: node})
    metrics = MetricRecord({
        **_scalar_metrics(update),
        "mean-embedding": [float(v) for v in update.mean_embedding],
        "std-embedding": [float(v) for v in update.std_embedding],
    })
    return RecordDict({ARRAYS_KEY: ArrayRecord(local), METRICS_KEY: metrics, NODE_KEY: node})


def read_node_record(reply: RecordDict) -> tuple[str, int]:
    """(node name, partition id) of the node that sent ``reply``."""
    node = reply[NODE_KEY]
    return str(node["node-name"]), int(node["partition-id"])


def read_update_records(reply: RecordDict, global_arrays: list[np.ndarray], bits: int = 0) -> LocalUpdate:
    """The :class:`~fedcl.federated.local.LocalUpdate` in ``reply``, Δθ_i taken against ``global_arrays``
    (the θ̂ the nodes trained from), or decoded from ``bits`` bits per parameter (ValueError if malformed)."""
    metrics = reply[METRICS_KEY]
    return _update(metrics, read_delta(reply, global_arrays, bits),
                   np.asarray(metrics["mean-embedding"], dtype=np.float64),
                   np.asarray(metrics["std-embedding"], dtype=np.float64))


def read_delta(reply: RecordDict, global_arrays: list[np.ndarray], bits: int = 0) -> list[np.ndarray]:
    """Δθ_i of ``reply``: θ_i − ``global_arrays``, or decoded from ``bits`` bits per parameter."""
    local = reply[ARRAYS_KEY].to_numpy_ndarrays()
    if bits:
        return unflatten(dequantise(Packed.from_wire(local, bits, sum(a.size for a in global_arrays))), global_arrays)
    return [new - old for new, old in zip(local, global_arrays)]


def _update(scalars, delta: list[np.ndarray], mean: np.ndarray, std: np.ndarray) -> LocalUpdate:
    """A LocalUpdate from its arrays and the scalars every reply carries (see :func:`_scalar_metrics`)."""
    return LocalUpdate(delta=delta, n_samples=int(scalars["num-examples"]), mean_embedding=mean, std_embedding=std,
                       distance=float(scalars["distance"]), loss=float(scalars["loss"]),
                       contrastive=float(scalars["contrastive"]),
                       epsilon=float(scalars["epsilon"]) if "epsilon" in scalars else None)


def scalar_records(update: LocalUpdate, node_name: str, partition_id: int) -> RecordDict:
    """A node's reply under secure aggregation: n_i, own-frame distance and losses (clear by design,
    docs/privacy.md), name and partition id; no θ_i, μ_i or σ_i, which stay in ``context.state``."""
    node = ConfigRecord({"node-name": node_name, "partition-id": partition_id})
    return RecordDict({METRICS_KEY: MetricRecord(_scalar_metrics(update)), NODE_KEY: node})


def read_scalar_records(reply: RecordDict) -> LocalUpdate:
    """The clear scalars of a :func:`scalar_records` reply, as a LocalUpdate with no arrays."""
    return _update(reply[METRICS_KEY], [], np.zeros(0), np.zeros(0))


def keep_update(state: RecordDict, update: LocalUpdate, server_round: int) -> None:
    """Keep the node's update on the node, for the masked sums that follow its train reply."""
    state[KEPT_UPDATE_KEY] = ArrayRecord([*update.delta, update.mean_embedding, update.std_embedding])
    state[KEPT_SCALARS_KEY] = ConfigRecord({"server-round": server_round, **_scalar_metrics(update)})


def kept_update(state: RecordDict, server_round: int) -> LocalUpdate:
    """The update :func:`keep_update` kept for ``server_round``; ValueError if there is none."""
    if KEPT_SCALARS_KEY not in state or int(state[KEPT_SCALARS_KEY]["server-round"]) != server_round:
        raise ValueError(f"this node kept no update for round {server_round}: it did not train in that round "
                         "(restarted, or the server skipped its train message)")
    arrays, scalars = state[KEPT_UPDATE_KEY].to_numpy_ndarrays(), state[KEPT_SCALARS_KEY]
    return _update(scalars, arrays[:-2], arrays[-2], arrays[-1])
