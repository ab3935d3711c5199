"""Tests for the leakage guard and NodeScaler."""

import numpy as np
import pytest
from sklearn.base import clone

from fedcl.data import (
    COLUMNS,
    JITTER_COLUMNS,
    JITTER_MEAN_COLUMNS,
    JITTER_VARIANCE_COLUMNS,
    N_FEATURES,
    NodeScaler,
    leakage_guard,
)

DAY = 86_400.0


def test_jitter_column_indices():
    assert [COLUMNS[i] for i in JITTER_MEAN_COLUMNS] == [
        f"HH_jit_L{d}_mean" for d in ("5", "3", "1", "0.1", "0.01")
    ]
    assert all(COLUMNS[i].startswith("HH_jit_") and COLUMNS[i].endswith("_variance")
               for i in JITTER_VARIANCE_COLUMNS)
    assert len(JITTER_VARIANCE_COLUMNS) == 5
    assert sorted(JITTER_COLUMNS) == sorted([*JITTER_MEAN_COLUMNS, *JITTER_VARIANCE_COLUMNS])


def test_leakage_guard_blanks_only_clock_values():
    # Prepare: row 0 is clock-polluted everywhere, row 1 small, row 2 exactly at the limits.
    X = np.full((3, N_FEATURES), 1.5e9)
    X[0, JITTER_VARIANCE_COLUMNS] = 1.5e9**2  # variance of a clock-polluted stream
    X[1] = 3.0
    mean, var = JITTER_MEAN_COLUMNS[0], JITTER_VARIANCE_COLUMNS[0]
    X[2] = DAY  # at the limit: kept
    X[2, JITTER_VARIANCE_COLUMNS] = DAY**2
    X[1, mean] = -2 * DAY  # |v| counts for means
    X[1, var] = 2 * DAY  # above the mean limit but far below the variance limit
    original = X.copy()

    # Execute
    G = leakage_guard(X)

    # Assert
    np.testing.assert_array_equal(X, original)  # input untouched (copy)
    assert np.isnan(G[0, JITTER_COLUMNS]).all()
    assert np.isnan(G[1, mean]) and G[1, var] == 2 * DAY
    np.testing.assert_array_equal(G[2], original[2])
    others = np.setdiff1d(np.arange(N_FEATURES), JITTER_COLUMNS)
    np.testing.assert_array_equal(G[:, others], original[:, others])


def test_leakage_guard_rejects_wrong_width():
    with pytest.raises(ValueError, match="115"):
        leakage_guard(np.zeros((2, 10)))


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.lognormal(3, 2, (n, N_FEATURES)) * rng.choice([-1, 1], (n, N_FEATURES))


def test_scaler_standardises_signed_log_of_train():
    # Prepare
    X = _data()

    # Execute
    scaler = NodeScaler(clip=1e6).fit(X)
    Z = scaler.transform(X)

    # Assert
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-5)
    logged = np.sign(X) * np.log1p(np.abs(X))
    np.testing.assert_allclose(scaler.mean_, logged.mean(axis=0))


def test_scaler_fits_on_given_rows_only():
    # Prepare: test rows from another distribution must not move the statistics.
    train, test = _data(seed=1), _data(seed=2) * 1e3

    # Execute
    scaler = NodeScaler().fit(train)
    before = scaler.mean_.copy(), scaler.scale_.copy()
    scaler.transform(test)

    # Assert
    np.testing.assert_array_equal(scaler.mean_, before[0])
    np.testing.assert_array_equal(scaler.scale_, before[1])
    np.testing.assert_array_equal(scaler.mean_, NodeScaler().fit(train).mean_)


def test_scaler_imputes_nan_clips_and_handles_constant_columns():
    # Prepare
    X = _data()
    X[:, 0] = 0.1  # constant (round-off must not make it explode)
    X[:, 1] = np.nan  # entirely missing
    X[::3, 2] = np.nan  # partly missing

    # Execute
    scaler = NodeScaler(clip=3.0).fit(X)
    Z = scaler.transform(X)
    far = scaler.transform(np.full((1, N_FEATURES), 1e30))

    # Assert
    assert not np.isnan(Z).any()
    assert scaler.scale_[0] == 1.0 and scaler.scale_[1] == 1.0
    np.testing.assert_allclose(Z[:, 0], 0, atol=1e-6)
    np.testing.assert_array_equal(Z[:, 1], 0)
    np.testing.assert_array_equal(Z[::3, 2], 0)
    assert np.abs(Z).max() <= 3.0
    assert far.max() == 3.0


def test_scaler_api_contract():
    scaler = NodeScaler()
    assert scaler.get_params() == {"clip": 10.0, "keep_missing": False, "public": None}
    assert not hasattr(scaler, "mean_")
    assert clone(NodeScaler(clip=2.0)).clip == 2.0
    with pytest.raises(Exception, match="not fitted"):
        scaler.transform(_data())
    assert scaler.fit(_data(), y=None) is scaler
    with pytest.raises(ValueError, match="columns"):
        scaler.transform(np.zeros((2, N_FEATURES - 1)))
    with pytest.raises(ValueError):
        NodeScaler().fit(np.full((2, N_FEATURES), np.inf))


def test_scaler_keeps_missing_cells_when_asked():
    x = _data()
    x[::3, 7] = np.nan

    kept = NodeScaler(keep_missing=True).fit(x).transform(x)
    imputed = NodeScaler().fit(x).transform(x)

    assert np.array_equal(np.isnan(kept), np.isnan(x))
    assert np.array_equal(np.nan_to_num(kept), imputed)
