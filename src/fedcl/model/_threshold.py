"""The one way every detector sets its threshold: a quantile of benign calibration scores."""

from __future__ import annotations

import numpy as np

from fedcl.errors import check_fraction


def threshold_at_fpr(benign_scores: np.ndarray, fpr_target: float) -> float:
    """The (1 − fpr_target) quantile of benign scores: about ``fpr_target`` of benign rows score above it."""
    check_fraction("fpr_target", fpr_target)
    return float(np.quantile(benign_scores, 1 - fpr_target))
