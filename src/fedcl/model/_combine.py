"""How a personalised node's views make one score (numpy only: the gateway bundle uses it without torch)."""

import numpy as np

# (each view's scores in the node's units, shape (views, rows); each view's weight, shape (views,)) -> one score.
# The weighted sum term by term, not w @ s: BLAS rounds otherwise, and two views score exactly as before.
COMBINE = {
    "weighted": lambda s, w: (w[:, None] * s).sum(axis=0),  # shared and own view, w fitted per node: view_weights
    "tuned": lambda s, w: (w[:, None] * s).sum(axis=0),  # shared, own and fine-tuned view, w fitted per node
    "mean": lambda s, w: s.mean(axis=0),
    "max": lambda s, w: s.max(axis=0),  # an alarm from any view counts
}
# Under "tuned" the node's scores are in the own view's units and its tail weight counts twice: chosen
# on the development seed, where it lowered pooled FPR@TPR0.99 on both networks (docs/benchmark.md).
OWN_VIEW_ODDS = {"tuned": 2.0}


def tail_weight(scores: np.ndarray) -> float:
    """A view's weight from its benign validation scores: 1/(q99/q50 − 1). The lighter a view's benign
    tail against its typical score, the surer its line between benign and anomalous."""
    if not np.all(np.isfinite(scores)):
        raise ValueError("a view's validation scores are not all finite")
    q50, q99 = np.quantile(scores, [0.5, 0.99])
    return 1.0 / max(q99 / max(q50, 1e-12) - 1.0, 1e-6)


def combine_views(rule: str, scores: dict[str, np.ndarray], scales: dict[str, float],
                  weights: dict[str, float]) -> np.ndarray:
    """One score per row from each view's ``scores``, mapped into the node's units by ``scales`` and
    combined by ``rule`` with ``weights`` (all keyed by view, in the views' order)."""
    return COMBINE[rule](np.stack([s * scales[view] for view, s in scores.items()]),
                         np.array([weights[view] for view in scores]))


def view_weights(validation: dict[str, np.ndarray], own_odds: float = 1.0) -> dict[str, float]:
    """Each view's weight in a node's weighted mean (summing to 1; the last view gets 1 − the others', as
    the shared view's complement always was), from its benign validation scores alone: :func:`tail_weight`,
    the own view's times ``own_odds``. On the development seed this gave the weight to the own view where
    a federation of other devices blurs the node's traffic, and left it with the shared view on the
    simulated network (docs/benchmark.md)."""
    raw = {view: tail_weight(scores) * (own_odds if view == "own" else 1.0) for view, scores in validation.items()}
    *first, last = raw
    weights = {view: raw[view] / sum(raw.values()) for view in first}
    return weights | {last: 1.0 - sum(weights.values())}
