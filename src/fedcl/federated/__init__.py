"""Federated training: local steps, server aggregation and the in-process runner."""

from fedcl.federated.aggregate import apply_updates, dynamic_weights, reference_vector, sample_weights
from fedcl.federated.local import LocalUpdate, embed, local_train
from fedcl.federated.runner import FederationResult, aggregate_round, run_federation

__all__ = [
    "FederationResult",
    "LocalUpdate",
    "aggregate_round",
    "apply_updates",
    "dynamic_weights",
    "embed",
    "local_train",
    "reference_vector",
    "run_federation",
    "sample_weights",
]
