"""How a personalised node's two views make one score (numpy only: the gateway bundle uses it without torch)."""

import numpy as np

# (shared scores, own scores in shared units, the shared view's weight) -> one score
COMBINE = {
    "weighted": lambda a, b, w: w * a + (1 - w) * b,  # w fitted per node: shared_weight
    "mean": lambda a, b, w: (a + b) / 2,
    "max": lambda a, b, w: np.maximum(a, b),  # an alarm from either view counts
}


def tail_weight(scores: np.ndarray) -> float:
    """A view's weight from its benign validation scores: 1/(q99/q50 − 1). The lighter a view's benign
    tail against its typical score, the surer its line between benign and anomalous."""
    if not np.all(np.isfinite(scores)):
        raise ValueError("a view's validation scores are not all finite")
    q50, q99 = np.quantile(scores, [0.5, 0.99])
    return 1.0 / max(q99 / max(q50, 1e-12) - 1.0, 1e-6)


def shared_weight(shared_val: np.ndarray, own_val: np.ndarray) -> float:
    """The shared view's weight in a node's weighted mean, from its benign validation scores alone
    (:func:`tail_weight` of each view). On the development seed this gave the weight to the own view
    where a federation of other devices blurs the node's traffic, and left it with the shared view on
    the simulated network (docs/benchmark.md)."""
    shared, own = tail_weight(shared_val), tail_weight(own_val)
    return shared / (shared + own)
