"""Detection metrics, computed only where they are defined (null otherwise)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRIC_KEYS = (
    "auroc", "auprc", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "fpr", "fpr_at_tpr99",
)


def fpr_at_tpr(y_true: np.ndarray, scores: np.ndarray, tpr_target: float | np.ndarray = 0.99,
               sample_weight: np.ndarray | None = None) -> float | np.ndarray:
    """Smallest false-positive rate of any threshold that catches ``tpr_target`` of the attacks (an array of
    targets: one rate each, a ROC curve sampled where it matters)."""
    # Keep every threshold: collinear points that roc_curve drops by default can be the best one.
    fpr, tpr, _ = roc_curve(y_true, scores, sample_weight=sample_weight, drop_intermediate=False)
    at = fpr[np.searchsorted(tpr, tpr_target, side="left")]
    return float(at) if np.ndim(tpr_target) == 0 else at


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray, sample_weight: np.ndarray | None = None,
                    ) -> dict[str, float | None]:
    """AUROC, AUPRC and FPR@TPR0.99 (None without both classes); ``sample_weight``: rows stand for that many
    (e.g. the bins of score histograms)."""
    y_true = np.asarray(y_true).astype(int)
    weight = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if not (weight[y_true == 1].sum() > 0 and weight[y_true == 0].sum() > 0):
        return {"auroc": None, "auprc": None, "fpr_at_tpr99": None}
    return {"auroc": float(roc_auc_score(y_true, scores, sample_weight=sample_weight)),
            "auprc": float(average_precision_score(y_true, scores, sample_weight=sample_weight)),
            "fpr_at_tpr99": fpr_at_tpr(y_true, scores, sample_weight=sample_weight)}


def count_metrics(true_positives: int, false_positives: int, attacks: int, benign: int) -> dict[str, float | None]:
    """The metrics of a threshold, from its counts (None where a class is missing)."""
    if attacks + benign == 0:
        raise ValueError("no rows to count")
    tp, fp = true_positives, false_positives
    recall = tp / attacks if attacks else None
    fpr = fp / benign if benign else None
    precision = tp / (tp + fp) if attacks and (tp + fp) > 0 else (0.0 if attacks else None)
    f1 = None
    if recall is not None and precision is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "accuracy": float((tp + benign - fp) / (attacks + benign)),
        "balanced_accuracy": (recall + 1 - fpr) / 2 if attacks and benign else None,
        "precision": None if precision is None else float(precision),
        "recall": None if recall is None else float(recall),
        "f1": None if f1 is None else float(f1),
        "fpr": None if fpr is None else float(fpr),
    }


def ordered(metrics: dict[str, float | None]) -> dict[str, float | None]:
    """``metrics`` in METRIC_KEYS order."""
    return {k: metrics[k] for k in METRIC_KEYS}


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
    counts = count_metrics(int(np.sum(pos & (y_pred == 1))), int(np.sum(neg & (y_pred == 1))),
                           int(pos.sum()), int(neg.sum()))
    return ordered({**ranking_metrics(y_true, scores), **counts})


def histogram_roc(benign: np.ndarray, attack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at each bin edge of score histograms (same bins, ascending scores), from flagging nothing."""
    fp, tp = (np.r_[0, np.cumsum(np.asarray(h)[::-1])] for h in (benign, attack))
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def expected_fpr(n_validation: int, fpr_target: float) -> float:
    """The FPR to expect at a threshold set at the (1 − ``fpr_target``) quantile of ``n_validation`` benign
    scores (numpy's interpolation, at position h = (1 − p)(n − 1)): a new benign row lands above it with
    probability (n − h)/(n + 1) = (1 + p(n − 1))/(n + 1), about p + 1/(n + 1) for small p."""
    return (1 + fpr_target * (n_validation - 1)) / (n_validation + 1)


def few_rows(rows: dict[str, dict[str, int]], fpr_target: float) -> list[str]:
    """One line of text per node whose figures rest on few benign rows: a threshold from so few
    validation rows that the FPR to expect at it is 1.5 × ``fpr_target`` or more (under 195 rows for
    0.01), or fewer than 100 benign test rows."""
    lines = []
    for name, r in rows.items():
        why = []
        expected = expected_fpr(r["validation"], fpr_target) if r["validation"] > 0 else fpr_target
        if expected >= 1.5 * fpr_target:
            why.append(f"its threshold comes from {r['validation']:,} benign validation rows: expect an FPR of "
                       f"about {expected:.3f} at it, not {fpr_target:g}")
        if 0 < r["benign_test"] < 100:
            why.append(f"{r['benign_test']:,} benign test rows: each moves its FPR by {1 / r['benign_test']:.3f}")
        if why:
            lines.append(f"{name}: " + "; ".join(why))
    return lines
