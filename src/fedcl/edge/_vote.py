"""The windowed alarm of :func:`fedcl.model.majority_vote`, importable without torch."""

from __future__ import annotations

import numpy as np


def majority_vote(flags: np.ndarray, window: int) -> np.ndarray:
    """Alarm at packet t when more than half of the last ``window`` packets (t−w+1 … t) are flagged.

    The same function as :func:`fedcl.model.majority_vote` (tested equal), which cannot be imported
    without torch: ``fedcl.model`` loads the encoders on import. The first w−1 packets need the same
    count from the fewer packets they have.
    """
    flags = np.asarray(flags, dtype=np.int64)
    csum = np.concatenate([[0], np.cumsum(flags)])
    t = np.arange(len(flags))
    in_window = csum[t + 1] - csum[np.maximum(t + 1 - window, 0)]
    return (in_window > window // 2).astype(np.int64)
