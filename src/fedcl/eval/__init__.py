"""Evaluation: metrics and the run report."""

from fedcl.eval.metrics import METRIC_KEYS, detection_metrics, fpr_at_tpr

__all__ = ["METRIC_KEYS", "detection_metrics", "fpr_at_tpr"]
