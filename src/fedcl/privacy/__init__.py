"""Privacy of what leaves a node: secure aggregation (pairwise masking with dropout recovery) and the
dynamic and FedAvg server steps on top of it; record-level differential privacy (DP-SGD with Opacus, a
Gaussian mechanism for the statistics, one accountant). See docs/privacy.md for the threat model."""

from fedcl.privacy.dp import DPPlan, RowContrastiveLoss, privacy_record, private_statistics, spent_epsilon
from fedcl.privacy.fixed_point import CLIP, SCALE_BITS, decode, encode, max_error
from fedcl.privacy.secagg import Aborted, Node, SecureSum, Server, default_threshold, secure_sum
from fedcl.privacy.secure_rules import node_distance, secure_aggregate_round, secure_step, stats_vector, update_vector

__all__ = [
    "Aborted",
    "CLIP",
    "DPPlan",
    "RowContrastiveLoss",
    "SCALE_BITS",
    "Node",
    "SecureSum",
    "Server",
    "decode",
    "default_threshold",
    "encode",
    "max_error",
    "node_distance",
    "privacy_record",
    "private_statistics",
    "secure_aggregate_round",
    "secure_step",
    "secure_sum",
    "spent_epsilon",
    "stats_vector",
    "update_vector",
]
