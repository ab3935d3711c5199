"""Federated training: local steps, server aggregation and the in-process runner."""

from fedcl.federated.aggregate import apply_updates, dynamic_weights, reference_vector, sample_weights
from fedcl.federated.local import LocalUpdate, embed, local_train, node_generator
from fedcl.federated.runner import FederationResult, aggregate_round, round_record, run_federation

__all__ = [
    "FederationResult",
    "LocalUpdate",
    "aggregate_round",
    "apply_updates",
    "dynamic_weights",
    "embed",
    "local_train",
    "node_generator",
    "reference_vector",
    "round_record",
    "run_federation",
    "sample_weights",
]
