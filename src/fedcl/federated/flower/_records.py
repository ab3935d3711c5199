"""What crosses the wire, as Flower records: the run config, g, a node's update, statistics and identity."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedcl.config import FedCLConfig
from fedcl.federated.local import LocalUpdate

REFERENCE_KEY = "reference"
#: Keys of a reply's RecordDict: θ_i, the node's statistics (numbers only) and who the node is.
ARRAYS_KEY, METRICS_KEY, NODE_KEY = "arrays", "metrics", "node"


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


def update_records(update: LocalUpdate, global_arrays: list[np.ndarray], node_name: str,
                   partition_id: int) -> RecordDict:
    """A node's reply: its trained θ_i, n_i, mean embedding μ_i, d_i and losses, and its name and
    partition id. No rows.

    The name travels in a ConfigRecord (a MetricRecord holds numbers only); FedAvg's reply check
    and Flower's DP wrappers look only at the one ArrayRecord and the one MetricRecord.
    """
    local = [g + d for g, d in zip(global_arrays, update.delta)]
    metrics = MetricRecord({
        "num-examples": update.n_samples,
        "distance": update.distance,
        "loss": update.loss,
        "contrastive": update.contrastive,
        "mean-embedding": [float(v) for v in update.mean_embedding],
        "std-embedding": [float(v) for v in update.std_embedding],
    })
    node = ConfigRecord({"node-name": node_name, "partition-id": partition_id})
    return RecordDict({ARRAYS_KEY: ArrayRecord(local), METRICS_KEY: metrics, NODE_KEY: node})


def read_node_record(reply: RecordDict) -> tuple[str, int]:
    """(node name, partition id) of the node that sent ``reply``."""
    node = reply[NODE_KEY]
    return str(node["node-name"]), int(node["partition-id"])


def read_update_records(reply: RecordDict, global_arrays: list[np.ndarray]) -> LocalUpdate:
    """The :class:`~fedcl.federated.local.LocalUpdate` in ``reply``, Δθ_i taken against ``global_arrays``."""
    local, metrics = reply[ARRAYS_KEY].to_numpy_ndarrays(), reply[METRICS_KEY]
    return LocalUpdate(
        delta=[new - old for new, old in zip(local, global_arrays)],
        n_samples=int(metrics["num-examples"]),
        mean_embedding=np.asarray(metrics["mean-embedding"], dtype=np.float64),
        std_embedding=np.asarray(metrics["std-embedding"], dtype=np.float64),
        distance=float(metrics["distance"]),
        loss=float(metrics["loss"]),
        contrastive=float(metrics["contrastive"]),
    )
