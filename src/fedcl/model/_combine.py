"""How a personalised node's two views make one score (numpy only: the gateway bundle uses it without torch)."""

import numpy as np

COMBINE = {
    "mean": lambda a, b: (a + b) / 2,
    "max": np.maximum,  # an alarm from either view counts
}
