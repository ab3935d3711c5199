"""Federated training: local steps, server aggregation and the in-process runner.

Names load on first use (:func:`fedcl._lazy_exports`): a node's local step does not pull in the
server's robust rules.
"""

from fedcl import _lazy_exports

_EXPORTS = {
    ".aggregate": ["apply_updates", "dynamic_weights", "reference_vector", "sample_weights"],
    ".local": ["LocalUpdate", "embed", "local_train", "node_generator"],
    ".runner": ["FederationResult", "FederationState", "aggregate_round", "round_record", "run_federation"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = [
    "FederationResult",
    "FederationState",
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
