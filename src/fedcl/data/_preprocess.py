"""Per-node preprocessing: the timestamp-leakage guard and the node scaler."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from ._schema import COLUMNS, JITTER_MEAN_COLUMNS, JITTER_VARIANCE_COLUMNS, N_FEATURES

__all__ = ["JITTER_LIMIT", "leakage_guard", "NodeScaler", "public_statistics", "training_scaler"]

#: One day in seconds: the largest plausible jitter (inter-arrival) mean.
JITTER_LIMIT = 86_400.0

# Round-off on a constant column leaves a std of a few ulps, not 0; dividing by
# it would blow the column up. Real spread in log space is far above this.
MIN_STD = 1e-12

# Under differential privacy the rows that train the federation's encoder are scaled with statistics that
# depend on no row, so that each row's input depends on that row alone: fitted statistics would make one
# row move every row's input (docs/privacy.md). For N-BaIoT's columns each column's range follows from its
# definition (:data:`PUBLIC_RANGES`); another table gets this constant scale around 0 (signed-log units).
PRIVATE_SCALE = 5.0

_SIZE = np.log1p(1514.0)  # the largest Ethernet frame, in signed-log units
_SIZE_VARIANCE = np.log1p(1514.0**2 / 4)  # the largest variance of values in [0, 1514]
_COUNT = np.log1p(1e5)  # a damped count settles at r/(λ·ln 2): 1e5 is ~690 packets/s at the slowest λ = 0.01
_DAY = np.log1p(86_400.0)  # the longest jitter the leakage guard lets through, in seconds
#: The nominal signed-log range of each kind of N-BaIoT column, from its definition (Kitsune's damped
#: statistics of frame sizes, counts and inter-arrival times), not fitted to data. Conventions, not bounds:
#: a magnitude or radius (over both directions) can reach √2 times one direction's, Kitsune's damped pcc
#: leaves [−1, 1] a little, and the scaler clips at ±10 scales. The count ceiling and the ±2-scale
#: convention are choices made on the development seed, like any hyperparameter.
PUBLIC_RANGES = {
    "weight": (np.log1p(1.0), _COUNT),
    "mean": (np.log1p(60.0), _SIZE),  # frame sizes from the smallest Ethernet frame
    "magnitude": (np.log1p(60.0), _SIZE),
    "std": (0.0, np.log1p(1514.0 / 2)),
    "variance": (0.0, _SIZE_VARIANCE),
    "radius": (0.0, _SIZE_VARIANCE),
    "covariance": (-_SIZE_VARIANCE, _SIZE_VARIANCE),
    "pcc": (-np.log1p(1.0), np.log1p(1.0)),
    "jitter mean": (0.0, _DAY),
    "jitter variance": (0.0, 2 * _DAY),
}


def public_statistics(schema: str, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of each column that depend on no row: for N-BaIoT (``schema="nbaiot"``) the middle
    of each column's :data:`PUBLIC_RANGES` range and a quarter of its width (the range spans ±2 scales);
    otherwise 0 and :data:`PRIVATE_SCALE`."""
    if schema != "nbaiot":
        return np.zeros(n_features), np.full(n_features, PRIVATE_SCALE)
    if n_features != N_FEATURES:
        raise ValueError(f"N-BaIoT rows have {N_FEATURES} columns, got {n_features}")
    kinds = [("jitter " if "_jit_" in c and not c.endswith("weight") else "") + c.rsplit("_", 1)[1] for c in COLUMNS]
    low, high = np.array([PUBLIC_RANGES[k] for k in kinds]).T
    return (low + high) / 2, (high - low) / 4

# Rows per block of NodeScaler.transform: ~1 MB of float32, so a block's passes run in cache.
_BLOCK = 2048

# numpy's float32 log1p runs in SIMD, but falls back to a path ~10x slower for a whole vector that holds a
# NaN, a denormal or a value whose powers underflow (N-BaIoT's guarded rows hold NaN in every row, and
# casting its tiniest variances to float32 leaves denormals). Below 2^-24, log1p(a) rounds to a; so
# log1p runs on max(|x|, 2^-24) and min(result, |x|) gives log1p(|x|) back, bit for bit: numpy's float32
# log1p returns a itself for every float32 a < 2^-24 and at most a above (checked over every float32), and
# np.minimum brings the NaN back.
_LOG1P_FLOOR = np.float32(2.0**-24)
_SIGN_BIT = np.int32(-(2**31))

# numpy broadcasts a (features,) vector over a block one row (115 values) at a time; over rows viewed
# _TILE at a time against the statistics tiled _TILE times, its loops run ~1.5x faster.
_TILE = 64


def training_scaler(private: bool = False, schema: str = "nbaiot") -> "NodeScaler":
    """The scaler of the rows a node trains the federation's encoder on (NaN kept for the encoder): its
    own statistics, or under differential privacy the ``schema``'s :func:`public_statistics`."""
    return NodeScaler(keep_missing=True, public=schema if private else None)


def leakage_guard(X, strict=False, copy=True):
    """Blank out capture-clock artefacts in the ``HH_jit_*`` columns.

    Kitsune's jitter statistics measure the first inter-arrival time of a
    channel from time zero, so a channel that has seen a single packet
    reports the raw Unix capture time (about 1.5e9 s) as its mean, and a
    variance of that order squared. In N-BaIoT attacks and benign traffic
    were captured on different days, so these values are much more frequent
    in attack rows (38 % against almost none): a detector can look perfect
    by reading the clock. No real jitter lasts a day, so means with
    ``|v| > 86_400`` and variances with ``v > 86_400**2`` are set to NaN
    (missing), which the scaler then imputes like any missing value.

    That still leaves a trace: on fedmse-iid every attack row has a masked jitter value against
    about 11 % of benign rows, so *where* values are missing tells captures apart. ``strict=True``
    masks every ``HH_jit_*_mean`` and ``_variance`` value, so no jitter statistic but the
    channel weight reaches a model; use it to check that a result does not rest on that trace.

    The guard is N-BaIoT's: another feature table (``schema="auto"``) has no ``HH_jit`` columns, and
    a run on one goes without it (``leakage_guard="off"``).

    Parameters
    ----------
    X : array-like of shape (n_samples, 115)
        Raw rows in ``COLUMNS`` order; NaN allowed.
    strict : bool, default=False
        Mask all jitter means and variances, not only the epoch-like ones.
    copy : bool, default=True
        False: mask ``X`` itself when it is a writable float32 or float64
        array (a caller that owns its rows saves a copy of them).

    Returns
    -------
    X_guarded : ndarray of shape (n_samples, 115), float64, or float32 for float32 ``X``
        ``X`` with the artefacts set to NaN (a copy unless ``copy=False``);
        other values and all non-jitter columns are unchanged.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D with 115 columns.
    """
    dtype = np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64  # float32 rows stay float32
    X = np.array(X, dtype=dtype, copy=copy or None)  # copy=None: only if it must
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise ValueError(f"expected shape (n, {N_FEATURES}), got {X.shape}")
    if strict:
        X[:, JITTER_MEAN_COLUMNS] = np.nan
        X[:, JITTER_VARIANCE_COLUMNS] = np.nan
        return X
    mean = X[:, JITTER_MEAN_COLUMNS]
    mean[np.abs(mean) > JITTER_LIMIT] = np.nan
    X[:, JITTER_MEAN_COLUMNS] = mean
    var = X[:, JITTER_VARIANCE_COLUMNS]
    var[var > JITTER_LIMIT**2] = np.nan
    X[:, JITTER_VARIANCE_COLUMNS] = var
    return X


def signed_log1p(X: np.ndarray) -> np.ndarray:
    """sign(x) * log1p(|x|): tames heavy tails and keeps the sign (NaN stays NaN)."""
    return np.sign(X) * np.log1p(np.abs(X))


def nan_mean_std(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) std of ``Z`` over its non-NaN cells; 0 and 0 for an all-NaN column.

    By hand rather than ``np.nanmean``/``np.nanstd``, which warn on all-NaN columns.
    """
    observed = ~np.isnan(Z)
    count = observed.sum(axis=0)
    mean = np.divide(np.where(observed, Z, 0.0).sum(axis=0), count, out=np.zeros(Z.shape[1]), where=count > 0)
    sq = np.where(observed, (Z - mean) ** 2, 0.0).sum(axis=0)
    return mean, np.sqrt(np.divide(sq, count, out=np.zeros(Z.shape[1]), where=count > 0))


class NodeScaler(TransformerMixin, BaseEstimator):
    """Signed-log standardiser fitted on one node's own benign training rows.

    Each node scales with its own statistics, so no raw statistic leaves the
    node (unless ``acceptance_margin`` releases its federation view, scaler
    included: docs/privacy.md). ``transform`` applies ``sign(x) * log1p(|x|)`` (the features span
    many orders of magnitude), standardises with the mean and std learned in
    ``fit``, imputes missing values with 0 (the node's own mean) unless
    ``keep_missing``, and clips to ``[-clip, clip]``.

    Parameters
    ----------
    clip : float, default=10.0
        Absolute bound of the output, in standard deviations.
    keep_missing : bool, default=False
        Leave missing cells as NaN, for a model that treats them itself
        (fedcl's encoder reads a missing-value mask).
    public : {"nbaiot", "auto"}, optional
        Scale with :func:`public_statistics` of this schema instead of the
        fitted statistics: each row is then scaled by itself alone, as
        differential privacy needs (fitted statistics make one row move
        every row's input).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        NaN-ignoring mean of each signed-log column over the fitted rows
        (0 for a column that is entirely missing).
    scale_ : ndarray of shape (n_features,)
        NaN-ignoring std of each signed-log column; 1 for constant or
        entirely missing columns.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    """

    def __init__(self, clip=10.0, keep_missing=False, public=None):
        self.clip = clip
        self.keep_missing = keep_missing
        self.public = public

    def fit(self, X, y=None):
        """Learn the node's mean and std from its benign training rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Benign training rows; NaN allowed, inf not.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : NodeScaler
            The fitted scaler.
        """
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip!r}")
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        if self.public is not None:
            mean, std = public_statistics(self.public, X.shape[1])
        else:
            mean, std = nan_mean_std(signed_log1p(X))
        std[std <= MIN_STD] = 1.0  # constant or all-NaN columns: mean 0 / std 1
        self.mean_ = mean
        self.scale_ = std
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """Scale rows with the fitted statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to scale; NaN allowed, inf not.

        Returns
        -------
        X_scaled : ndarray of shape (n_samples, n_features), float32
            Values in ``[-clip, clip]``; no NaN unless ``keep_missing``.

        Raises
        ------
        ValueError
            If the column count differs from the one seen in ``fit``.
        """
        X = self._check_rows(X)
        Z = np.empty(X.shape, dtype=np.float32)
        for _ in self._scaled_blocks(X, _BLOCK, Z, reuse=False):  # each block is written into its rows of Z
            pass
        return Z

    def iter_transform(self, X, rows=_BLOCK, *, out=None, work=None):
        """:meth:`transform` ``rows`` rows at a time, each block written into the same buffer.

        For a caller that uses each block before asking for the next (a scorer): the rows are checked
        once, the buffers are allocated once and stay in cache, and no scaled copy of the whole ``X`` is
        made. The values are :meth:`transform`'s, bit for bit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to scale; NaN allowed, inf not.
        rows : int, default=2048
            Rows per block.
        out : ndarray of shape (≥ min(n_samples, rows), n_features), float32, optional
            The buffer the blocks are written into (its leading rows); a new one by default.
        work : ndarray of shape (2, ≥ min(n_samples, rows), n_features), float32, optional
            Scratch memory, used only while a block is being scaled: a caller can lend memory it
            uses between blocks, so that less memory passes through the cache.

        Yields
        ------
        block : ndarray of shape (≤ rows, n_features), float32
            The next rows, scaled; overwritten by the next block.

        Raises
        ------
        ValueError
            When the first block is asked for, if the column count differs from the one seen in
            ``fit``; at the block that holds it, for an infinite cell.
        """
        X = self._check_rows(X)
        if out is None:
            out = np.empty((min(len(X), rows), X.shape[1]), dtype=np.float32)
        yield from self._scaled_blocks(X, rows, out, reuse=True, work=work)

    def _scaled_blocks(self, X, rows, out, reuse, work=None):
        """Checked rows scaled ``rows`` at a time into ``out``: into its leading rows each time (``reuse``),
        or each block into its own rows."""
        if work is None:
            work = np.empty((2, min(len(X), rows), X.shape[1]), dtype=np.float32)  # x as float32, and |x|
        mean, scale = (np.tile(v.astype(np.float32), (_TILE, 1)) for v in (self.mean_, self.scale_))
        for lo in range(0, len(X), rows):
            x = X[lo : lo + rows]
            block = out[: len(x)] if reuse else out[lo : lo + len(x)]
            _scale_block(x, block, work[:, : len(x)], mean, scale, self.clip, self.keep_missing)
            yield block

    def _check_rows(self, X):
        """``X`` as a float64 or float32 array with the fitted column count; inf is caught block by block."""
        check_is_fitted(self)
        X = check_array(X, dtype=(np.float64, np.float32), ensure_all_finite=False)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} columns, but NodeScaler was fitted with {self.n_features_in_}"
            )
        return X


def _scale_block(x, out, work, mean, scale, clip, keep_missing) -> None:
    """NodeScaler.transform of rows ``x`` into ``out`` (float32, same shape); ``work`` holds two float32
    buffers of that shape, ``mean`` and ``scale`` the float32 statistics as (_TILE, features) tiles.

    The roundings of the former whole-array code: x is cast to float32 first, abs and the sign are
    exact, and log1p(|x|) is the float32 log1p of the same float32 |x|.
    """
    f, a = work
    with np.errstate(over="ignore"):  # |x| beyond float32 becomes inf, which the clip bounds
        np.copyto(f, x, casting="same_kind")
    np.abs(f, out=a)
    np.fmax(a, _LOG1P_FLOOR, out=out)  # NaN, 0 and tiny values too: log1p's fast path (_LOG1P_FLOOR)
    if out.max() == np.inf:  # ±inf in x, or |x| beyond float32 (no NaN is left to hide it)
        check_array(x, dtype=np.float64, ensure_all_finite="allow-nan")  # raises on inf
    np.log1p(out, out=out)
    np.minimum(out, a, out=out)  # log1p(|x|): |x| below the floor, NaN back
    # sign(x) · log1p|x|: x's sign bit onto log1p|x| (≥ 0), cheaper than copysign or a masked negative
    sign = f.view(np.int32)
    np.bitwise_and(sign, _SIGN_BIT, out=sign)
    np.bitwise_or(out.view(np.int32), sign, out=out.view(np.int32))
    _standardise(out, mean, scale)
    if not keep_missing:
        np.copyto(out, 0.0, where=np.isnan(out))  # 0 = the node's own mean after standardising
    np.clip(out, -clip, clip, out=out)


def _standardise(out, mean, scale) -> None:
    """``out`` = (out − mean) / scale in place, ``_TILE`` rows per numpy loop; mean, scale: (_TILE, features)."""
    whole = len(out) - len(out) % _TILE
    tiles = np.reshape(out[:whole], (-1, mean.size), copy=False)  # a view: raises rather than copy
    tiles -= mean.reshape(-1)
    tiles /= scale.reshape(-1)
    rest = out[whole:]
    rest -= mean[0]
    rest /= scale[0]
