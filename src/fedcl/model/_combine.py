"""How a personalised node's two views make one score (numpy only: the gateway bundle uses it without torch)."""

import numpy as np

# (shared scores, own scores in shared units, the shared view's weight) -> one score
COMBINE = {
    "weighted": lambda a, b, w: w * a + (1 - w) * b,  # w fitted per node: shared_weight
    "mean": lambda a, b, w: (a + b) / 2,
    "max": lambda a, b, w: np.maximum(a, b),  # an alarm from either view counts
}


def shared_weight(shared_val: np.ndarray, own_val: np.ndarray) -> float:
    """The shared view's weight in a node's weighted mean, from its benign validation scores alone.

    Each view weighs 1/(q99/q50 − 1) of its scores: the lighter a view's benign tail against its
    typical score, the surer its line between benign and anomalous. On the development seed this
    gave the weight to the own view where a federation of other devices blurs the node's traffic,
    and left it with the shared view on the simulated network (docs/benchmark.md).
    """
    def weight(scores: np.ndarray) -> float:
        q50, q99 = np.quantile(scores, [0.5, 0.99])
        return 1.0 / max(q99 / max(q50, 1e-12) - 1.0, 1e-6)

    shared, own = weight(shared_val), weight(own_val)
    return shared / (shared + own)
