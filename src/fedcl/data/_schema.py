"""Column schema of N-BaIoT rows: names, width and the jitter columns."""

from importlib.resources import files

import numpy as np

__all__ = [
    "COLUMNS",
    "N_FEATURES",
    "JITTER_MEAN_COLUMNS",
    "JITTER_VARIANCE_COLUMNS",
    "JITTER_COLUMNS",
]


def _load_columns() -> tuple[str, ...]:
    """Read the shipped column list (one name a line, in file order)."""
    text = files("fedcl.data").joinpath("columns.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


#: The 115 feature names, in the order every N-BaIoT file stores them.
COLUMNS: tuple[str, ...] = _load_columns()

#: Number of features per row.
N_FEATURES = 115

if len(COLUMNS) != N_FEATURES:  # a damaged install must fail loudly, not misalign features
    raise ImportError(f"columns.txt lists {len(COLUMNS)} names, expected {N_FEATURES}")

#: Indices of the ``HH_jit_L*_mean`` columns (one per decay factor).
JITTER_MEAN_COLUMNS: np.ndarray = np.array(
    [i for i, c in enumerate(COLUMNS) if c.startswith("HH_jit_") and c.endswith("_mean")]
)

#: Indices of the ``HH_jit_L*_variance`` columns (one per decay factor).
JITTER_VARIANCE_COLUMNS: np.ndarray = np.array(
    [i for i, c in enumerate(COLUMNS) if c.startswith("HH_jit_") and c.endswith("_variance")]
)

#: Sorted union of the two above: every column the leakage guard may touch.
JITTER_COLUMNS: np.ndarray = np.sort(
    np.concatenate([JITTER_MEAN_COLUMNS, JITTER_VARIANCE_COLUMNS])
)
