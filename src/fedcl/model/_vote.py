"""Alarms over a window of packets: a majority vote, and the window a node's benign traffic never trips."""

from __future__ import annotations

import numpy as np

WINDOWS = tuple(range(1, 52, 2))  # odd, so a majority is never a tie


def majority_vote(flags: np.ndarray, window: int) -> np.ndarray:
    """Alarm at packet t when more than half of the last ``window`` packets (t−w+1 … t) are flagged.

    As the N-BaIoT authors did: one anomalous packet is not an attack, a run of them is. The first
    w−1 packets need the same count from the fewer packets they have.
    """
    flags = np.asarray(flags, dtype=np.int64)
    csum = np.concatenate([[0], np.cumsum(flags)])
    t = np.arange(len(flags))
    in_window = csum[t + 1] - csum[np.maximum(t + 1 - window, 0)]
    return (in_window > window // 2).astype(np.int64)


def choose_window(validation_flags: np.ndarray, windows: tuple[int, ...] = WINDOWS) -> int:
    """The smallest window with no windowed alarm on benign validation rows (in capture order).

    Small windows alarm sooner; this is the shortest one the node's own benign traffic never
    trips. If every window trips, the largest.
    """
    for w in windows:
        if not majority_vote(validation_flags, w).any():
            return w
    return windows[-1]
