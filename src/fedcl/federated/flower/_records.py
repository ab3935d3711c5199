"""What crosses the wire, as Flower records: the run config, g, a node's update and statistics."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

from fedcl.config import FedCLConfig
from fedcl.federated.local import LocalUpdate

REFERENCE_KEY = "reference"


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


def update_records(update: LocalUpdate, global_arrays: list[np.ndarray],
                   partition_id: int) -> tuple[ArrayRecord, MetricRecord]:
    """A node's reply: its trained θ_i, n_i, mean embedding μ_i, d_i and losses. No rows."""
    local = [g + d for g, d in zip(global_arrays, update.delta)]
    metrics = MetricRecord({
        "num-examples": update.n_samples,
        "partition-id": partition_id,
        "distance": update.distance,
        "loss": update.loss,
        "contrastive": update.contrastive,
        "mean-embedding": [float(v) for v in update.mean_embedding],
    })
    return ArrayRecord(local), metrics


def read_update_records(arrays: ArrayRecord, metrics: MetricRecord,
                        global_arrays: list[np.ndarray]) -> LocalUpdate:
    local = arrays.to_numpy_ndarrays()
    return LocalUpdate(
        delta=[new - old for new, old in zip(local, global_arrays)],
        n_samples=int(metrics["num-examples"]),
        mean_embedding=np.asarray(metrics["mean-embedding"], dtype=np.float64),
        distance=float(metrics["distance"]),
        loss=float(metrics["loss"]),
        contrastive=float(metrics["contrastive"]),
    )
