"""The 115 columns as a (23 statistics × 5 decay windows) grid, built from the column names."""

from __future__ import annotations

import re

import numpy as np

from fedcl.data import COLUMNS

__all__ = ["STATISTICS", "STREAMS", "WINDOWS", "WINDOW_INDEX", "to_windows"]

# "<stream>_L<λ>_<quantity>", e.g. "HH_jit_L0.01_mean" -> ("HH_jit", "0.01", "mean").
_NAME = re.compile(r"^(?P<stream>.+)_L(?P<window>[0-9.]+)_(?P<quantity>[a-z]+)$")


def _grid(columns: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...], np.ndarray]:
    """Statistics, their streams, windows (fastest decay first) and the (23, 5) column-index grid."""
    cells: dict[tuple[str, float], int] = {}
    statistics: list[str] = []
    streams: list[str] = []
    windows: set[float] = set()
    for i, name in enumerate(columns):
        match = _NAME.match(name)
        if match is None:
            raise ImportError(f"column {name!r} is not <stream>_L<lambda>_<quantity>")
        stat = f"{match['stream']}_{match['quantity']}"
        lam = float(match["window"])
        if stat not in statistics:
            statistics.append(stat)
            streams.append(match["stream"])
        windows.add(lam)
        cells[stat, lam] = i
    ordered = tuple(sorted(windows, reverse=True))  # λ=5 (last packets) ... λ=0.01 (long history)
    if len(cells) != len(columns) or len(cells) != len(statistics) * len(ordered):
        raise ImportError("the columns do not form a full statistics × windows grid")
    index = np.array([[cells[s, lam] for lam in ordered] for s in statistics], dtype=np.int64)
    return tuple(statistics), tuple(streams), ordered, index


#: The 23 statistic names (column name without its ``_L<λ>`` part), in first-appearance order,
#: the stream of each (``MI_dir``, ``H``, ``HH``, ``HH_jit``, ``HpHp``), and the 5 decay factors λ
#: in decreasing order (fast to slow decay), so neighbouring windows are neighbouring time scales.
STATISTICS, STREAMS, WINDOWS, _INDEX = _grid(COLUMNS)

#: ``WINDOW_INDEX[s, w]`` is the position in ``COLUMNS`` of statistic ``s`` at window ``w``; shape (23, 5).
WINDOW_INDEX: np.ndarray = _INDEX
WINDOW_INDEX.flags.writeable = False


def to_windows(X):
    """Rows of 115 columns as a (23 statistics, 5 windows) grid each.

    Parameters
    ----------
    X : ndarray or torch.Tensor of shape (n_samples, 115)
        Rows in ``COLUMNS`` order.

    Returns
    -------
    grid : same type, shape (n_samples, 23, 5)
        ``grid[i, s, w] = X[i, WINDOW_INDEX[s, w]]``.
    """
    if X.shape[-1] != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns, got {X.shape[-1]}")
    return X[:, WINDOW_INDEX]
