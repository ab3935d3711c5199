"""Evaluation: metrics and the run report."""

from fedcl import _lazy_exports

# Names load on first use (fedcl._lazy_exports).
_EXPORTS = {
    ".metrics": ["METRIC_KEYS", "detection_metrics", "fpr_at_tpr"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = ["METRIC_KEYS", "detection_metrics", "fpr_at_tpr"]
