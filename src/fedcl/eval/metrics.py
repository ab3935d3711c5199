"""Detection metrics, computed only where they are defined (null otherwise)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRIC_KEYS = (
    "auroc", "auprc", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "fpr", "fpr_at_tpr99",
)


def fpr_at_tpr(y_true: np.ndarray, scores: np.ndarray, tpr_target: float = 0.99) -> float:
    """Smallest false-positive rate of any threshold that catches ``tpr_target`` of the attacks."""
    # Keep every threshold: collinear points that roc_curve drops by default can be the best one.
    fpr, tpr, _ = roc_curve(y_true, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, tpr_target, side="left")])


def detection_metrics(y_true: np.ndarray, scores: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """All of METRIC_KEYS for one set of rows (1 = attack).

    A set without attack rows (or without benign rows) reports what can be computed and ``None``
    for the rest: e.g. a node that saw no attack has accuracy and FPR but no AUROC or recall.
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if not (len(y_true) == len(y_pred) == len(scores)) or len(y_true) == 0:
        raise ValueError("y_true, scores and y_pred must have the same, non-zero length")
    pos, neg = y_true == 1, y_true == 0
    tp = int(np.sum(pos & (y_pred == 1)))
    fp = int(np.sum(neg & (y_pred == 1)))
    recall = tp / pos.sum() if pos.any() else None
    fpr = fp / neg.sum() if neg.any() else None
    precision = tp / (tp + fp) if pos.any() and (tp + fp) > 0 else (0.0 if pos.any() else None)
    both = pos.any() and neg.any()
    f1 = None
    if recall is not None and precision is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "auroc": float(roc_auc_score(y_true, scores)) if both else None,
        "auprc": float(average_precision_score(y_true, scores)) if both else None,
        "accuracy": float(np.mean(y_true == y_pred)),
        "balanced_accuracy": (recall + 1 - fpr) / 2 if both else None,
        "precision": None if precision is None else float(precision),
        "recall": None if recall is None else float(recall),
        "f1": None if f1 is None else float(f1),
        "fpr": None if fpr is None else float(fpr),
        "fpr_at_tpr99": fpr_at_tpr(y_true, scores) if both else None,
    }
