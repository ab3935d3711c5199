"""Corrupt raw N-BaIoT rows for robustness experiments.

Every function takes raw rows in ``COLUMNS`` order (NaN = missing) and
returns a new float64 array; the input is never modified. Random functions
draw only from the ``numpy.random.Generator`` they are given, so a seeded
generator reproduces the corruption exactly.
"""

import re

import numpy as np

from fedcl.errors import check_fraction

from ._preprocess import MIN_STD, nan_mean_std, signed_log1p
from ._schema import COLUMNS, N_FEATURES

__all__ = [
    "FEATURE_GROUPS",
    "missing_completely_at_random",
    "missing_feature_group",
    "missing_row_blocks",
    "scaled_gaussian_noise",
    "contaminate",
]

# The stream is everything before "_L<decay>_": a plain prefix test would put
# "HH_jit_L1_mean" under "HH" and "HH_L1_mean" under "H".
_STREAM = re.compile(r"^(.+?)_L[0-9.]+_")


def _feature_groups() -> dict[str, np.ndarray]:
    """Column indices of each stream, in the order the streams first appear."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(COLUMNS):
        match = _STREAM.match(name)
        if match is None:
            raise ImportError(f"column {name!r} has no '_L<decay>_' part")
        groups.setdefault(match.group(1), []).append(i)
    out = {}
    for stream, idx in groups.items():
        arr = np.array(idx)
        arr.setflags(write=False)  # a shared constant: an in-place edit would corrupt every caller
        out[stream] = arr
    return out


#: Column indices of each traffic stream: "MI_dir" (15), "H" (15), "HH" (35),
#: "HH_jit" (15) and "HpHp" (35). Together they cover every column once.
FEATURE_GROUPS: dict[str, np.ndarray] = _feature_groups()

if sorted(np.concatenate(list(FEATURE_GROUPS.values()))) != list(range(N_FEATURES)):
    raise ImportError("feature groups do not cover the 115 columns exactly once")


def _rows(X, name="X") -> np.ndarray:
    """A float64 copy of X; ValueError unless its shape is (n, 115)."""
    X = np.array(X, dtype=np.float64)  # always a copy
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ValueError(f"{name}: expected shape (n, {N_FEATURES}), got {X.shape}")
    return X


def _check_rng(rng):
    """TypeError unless rng is a numpy Generator (a seed would silently mean something else)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def _group(group) -> np.ndarray:
    """Column indices of a named group; ValueError listing the names if unknown."""
    if group not in FEATURE_GROUPS:
        raise ValueError(f"unknown feature group {group!r}; expected one of {list(FEATURE_GROUPS)}")
    return FEATURE_GROUPS[group]


def missing_completely_at_random(X, fraction, rng) -> np.ndarray:
    """Set each cell to NaN independently with probability ``fraction``.

    Parameters
    ----------
    X : array-like of shape (n_samples, 115)
        Raw rows; NaN allowed (already-missing cells stay missing).
    fraction : float
        Probability that a cell is blanked, in [0, 1).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    X_missing : ndarray of shape (n_samples, 115), float64
        A copy of ``X`` with the drawn cells set to NaN.

    Raises
    ------
    ValueError
        If ``X`` is not of shape (n, 115) or ``fraction`` is outside [0, 1).
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.
    """
    X = _rows(X)
    check_fraction("fraction", fraction, zero_ok=True)
    _check_rng(rng)
    X[rng.random(X.shape) < fraction] = np.nan
    return X


def missing_feature_group(X, group) -> np.ndarray:
    """Set every column of one stream to NaN, as on a node whose extractor lacks it.

    Parameters
    ----------
    X : array-like of shape (n_samples, 115)
        Raw rows; NaN allowed.
    group : str
        A key of :data:`FEATURE_GROUPS`, e.g. ``"HpHp"``.

    Returns
    -------
    X_missing : ndarray of shape (n_samples, 115), float64
        A copy of ``X`` with the group's columns all NaN.

    Raises
    ------
    ValueError
        If ``X`` is not of shape (n, 115) or ``group`` is unknown.
    """
    X = _rows(X)
    X[:, _group(group)] = np.nan
    return X


def missing_row_blocks(X, fraction, rng, block=50) -> np.ndarray:
    """Blank one feature group over random stretches of consecutive rows.

    Models an extractor outage: for a while the rows still arrive, but one
    stream is missing from them. With ``n`` rows and ``b = min(block, n)``,
    ``k = round(fraction * n / b)`` blocks (at most ``n // b``, as blocks must
    fit) of ``b`` consecutive rows are placed uniformly at random without
    overlapping (they may touch). Each block loses all columns of one group
    drawn uniformly from :data:`FEATURE_GROUPS`, the same group for every row
    of the block. So ``k * b`` rows are hit, which is ``fraction * n`` to within
    ``b / 2`` rows; a ``fraction`` below ``b / (2 n)`` hits none.

    Parameters
    ----------
    X : array-like of shape (n_samples, 115)
        Raw rows in time order; NaN allowed.
    fraction : float
        Target share of rows hit, in [0, 1).
    rng : numpy.random.Generator
        Source of randomness.
    block : int, default=50
        Rows per outage, >= 1.

    Returns
    -------
    X_missing : ndarray of shape (n_samples, 115), float64
        A copy of ``X`` with the blocks' chosen groups set to NaN.

    Raises
    ------
    ValueError
        If ``X`` is not of shape (n, 115), ``fraction`` is outside [0, 1)
        or ``block`` is not an integer >= 1.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.
    """
    X = _rows(X)
    check_fraction("fraction", fraction, zero_ok=True)
    _check_rng(rng)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be an integer >= 1, got {block!r}")
    n = len(X)
    b = min(int(block), n)
    if b == 0:
        return X
    k = min(round(fraction * n / b), n // b)
    # Uniform non-overlapping placement: choose k of the n - k*b + k slots that
    # remain once each block is shrunk to one row, then grow the blocks back.
    slots = np.sort(rng.choice(n - k * b + k, size=k, replace=False))
    starts = slots + np.arange(k) * (b - 1)
    names = list(FEATURE_GROUPS)
    for start, g in zip(starts, rng.integers(len(names), size=k)):
        X[start:start + b, FEATURE_GROUPS[names[g]]] = np.nan
    return X


def scaled_gaussian_noise(X, std, rng, reference=None) -> np.ndarray:
    """Add Gaussian noise of ``std`` standard deviations of the node's scaled space.

    Works where :class:`NodeScaler` works: ``z = sign(x) * log1p(|x|)``. With
    ``s`` the NaN-ignoring (population) std of each column of ``z`` over the
    ``reference`` rows (default: ``X`` itself), ``z' = z + std * s * eps`` with ``eps ~ N(0, 1)`` per cell, and
    ``x' = sign(z') * expm1(|z'|)``. A scaler fitted on ``X`` thus sees
    ``transform(x') = transform(x) + std * eps`` (before clipping). Columns
    with ``s`` about 0 (constant or all missing) get no noise; NaN stays NaN.

    Parameters
    ----------
    X : array-like of shape (n_samples, 115)
        Raw rows of one node; NaN allowed, inf not.
    std : float
        Noise level in scaled units, finite and >= 0.
    rng : numpy.random.Generator
        Source of randomness.
    reference : array-like of shape (m, 115), optional
        Rows whose spread sets the units, e.g. the node's benign training rows
        when noising its attack rows, so every row set gets the same noise.

    Returns
    -------
    X_noisy : ndarray of shape (n_samples, 115), float64
        A noisy copy of ``X``.

    Raises
    ------
    ValueError
        If ``X`` is not of shape (n, 115) or holds inf, or ``std`` is
        negative or not finite.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.
    """
    X = _rows(X)
    if not (np.isfinite(std) and std >= 0):
        raise ValueError(f"std must be finite and >= 0, got {std!r}")
    _check_rng(rng)
    if np.isinf(X).any():
        raise ValueError("X holds inf values")
    Z = signed_log1p(X)
    R = Z if reference is None else signed_log1p(_rows(reference, "reference"))
    _, s = nan_mean_std(R)
    eps = rng.standard_normal(Z.shape)
    # Only noisy columns go through the log round trip, so the others keep their exact values.
    cols = s > MIN_STD
    Z = Z[:, cols] + std * s[cols] * eps[:, cols]
    X[:, cols] = np.sign(Z) * np.expm1(np.abs(Z))
    return X


def contaminate(train, attack, fraction, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix attack rows into benign training rows, as an unnoticed infection would.

    ``n_add = round(fraction * n / (1 - fraction))`` attack rows (at most
    ``len(attack)``) are drawn without replacement, so that ``fraction`` of
    the returned training rows are attacks. They are removed from the attack
    rows returned, so an evaluation never tests on rows it trained on.

    Parameters
    ----------
    train : array-like of shape (n, 115)
        Benign training rows.
    attack : array-like of shape (m, 115)
        Attack rows to draw from.
    fraction : float
        Target attack share of the training rows, in [0, 1).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    train_mixed : ndarray of shape (n + n_add, 115), float64
        ``train`` plus the drawn attack rows, shuffled.
    attack_rest : ndarray of shape (m - n_add, 115), float64
        ``attack`` without the drawn rows, in their original order.
    taken : ndarray of shape (n_add,), int
        Sorted indices into ``attack`` of the rows moved.

    Raises
    ------
    ValueError
        If ``train`` or ``attack`` is not of shape (n, 115) or ``fraction``
        is outside [0, 1).
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.
    """
    train, attack = _rows(train, "train"), _rows(attack, "attack")
    check_fraction("fraction", fraction, zero_ok=True)
    _check_rng(rng)
    n_add = min(round(fraction * len(train) / (1 - fraction)), len(attack))
    taken = np.sort(rng.choice(len(attack), size=n_add, replace=False))
    mixed = np.concatenate([train, attack[taken]])
    return mixed[rng.permutation(len(mixed))], np.delete(attack, taken, axis=0), taken
