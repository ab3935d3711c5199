"""Tests for the corruptions of raw rows used in robustness experiments."""

import numpy as np
import pytest

from fedcl.data import (
    COLUMNS,
    FEATURE_GROUPS,
    N_FEATURES,
    NodeScaler,
    contaminate,
    missing_completely_at_random,
    missing_feature_group,
    missing_row_blocks,
    scaled_gaussian_noise,
)


def _data(n=500, seed=0):
    """Heavy-tailed signed rows without NaN, like raw N-BaIoT features."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(3, 2, (n, N_FEATURES)) * rng.choice([-1, 1], (n, N_FEATURES))


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- feature groups -------------------------------------------------------------------------

def test_feature_groups_follow_column_names():
    # Independent of the module's regex: the stream is what precedes the first "_L".
    expected = {}
    for i, name in enumerate(COLUMNS):
        expected.setdefault(name.split("_L")[0], []).append(i)
    assert {g: list(idx) for g, idx in FEATURE_GROUPS.items()} == expected
    assert {g: len(idx) for g, idx in FEATURE_GROUPS.items()} == {
        "MI_dir": 15, "H": 15, "HH": 35, "HH_jit": 15, "HpHp": 35}
    assert "HH_L3_radius" in [COLUMNS[i] for i in FEATURE_GROUPS["HH"]]
    assert "HH_jit_L1_variance" not in [COLUMNS[i] for i in FEATURE_GROUPS["HH"]]
    assert "H_L0.1_mean" in [COLUMNS[i] for i in FEATURE_GROUPS["H"]]


def test_feature_groups_partition_the_columns():
    everything = np.concatenate(list(FEATURE_GROUPS.values()))
    assert sorted(everything) == list(range(N_FEATURES))


def test_feature_groups_are_read_only():
    with pytest.raises(ValueError):
        FEATURE_GROUPS["H"][0] = 0


# --- missing values ------------------------------------------------------------------------

def test_mcar_share_is_binomial():
    # Prepare
    X = _data(2000)
    X[0, 0] = np.nan  # already missing: must stay missing

    # Execute
    M = missing_completely_at_random(X, 0.2, _rng())

    # Assert: share within 4 binomial standard errors; kept cells unchanged.
    missing = np.isnan(M)
    share = missing.mean()
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / X.size)
    assert missing[0, 0]
    np.testing.assert_array_equal(M[~missing], X[~missing])
    # Independent per cell: no column or row is favoured.
    assert np.abs(missing.mean(axis=0) - 0.2).max() < 5 * np.sqrt(0.2 * 0.8 / len(X))


def test_mcar_zero_fraction_is_a_copy():
    X = _data(50)
    M = missing_completely_at_random(X, 0.0, _rng())
    np.testing.assert_array_equal(M, X)
    assert M is not X


@pytest.mark.parametrize("group", list(FEATURE_GROUPS))
def test_missing_feature_group_blanks_exactly_the_group(group):
    X = _data(20)
    M = missing_feature_group(X, group)
    blank_columns = np.flatnonzero(np.isnan(M).all(axis=0))
    np.testing.assert_array_equal(blank_columns, FEATURE_GROUPS[group])
    others = np.setdiff1d(np.arange(N_FEATURES), FEATURE_GROUPS[group])
    np.testing.assert_array_equal(M[:, others], X[:, others])


def test_missing_feature_group_unknown_lists_names():
    with pytest.raises(ValueError, match="HpHp"):
        missing_feature_group(_data(5), "HpHq")


def _runs(rows):
    """(start, length) of each run of consecutive row indices."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(r[0], len(r)) for r in np.split(rows, breaks) if len(r)]


@pytest.mark.parametrize("n, fraction, block, seed", [
    (1000, 0.3, 50, 0), (1030, 0.3, 50, 1), (777, 0.05, 20, 2), (400, 0.9, 50, 3), (30, 0.6, 50, 4),
    (30, 0.4, 50, 5)])
def test_row_blocks_are_whole_blocks_of_one_group(n, fraction, block, seed):
    # Prepare
    X = _data(n, seed)

    # Execute
    M = missing_row_blocks(X, fraction, _rng(seed), block=block)

    # Assert: about fraction of the rows, to within half a block.
    b = min(block, n)
    hit = np.flatnonzero(np.isnan(M).any(axis=1))
    assert len(hit) % b == 0
    assert abs(len(hit) - fraction * n) <= b / 2
    np.testing.assert_array_equal(M[~np.isnan(M)], X[~np.isnan(M)])
    # Touching blocks merge into one run; cut each run back into blocks of b rows.
    group_masks = {g: np.isin(np.arange(N_FEATURES), idx) for g, idx in FEATURE_GROUPS.items()}
    for start, length in _runs(hit):
        assert length % b == 0
        for s in range(start, start + length, b):
            mask = np.isnan(M[s:s + b])
            assert (mask == mask[0]).all()  # the same columns for every row of the block
            assert any((mask[0] == m).all() for m in group_masks.values())


def test_row_block_starts_are_random():
    X = _data(100)
    starts = set()
    for seed in range(300):
        hit = np.flatnonzero(np.isnan(missing_row_blocks(X, 0.1, _rng(seed), block=10)).any(axis=1))
        assert len(hit) == 10 and (np.diff(hit) == 1).all()
        starts.add(hit[0])
    assert min(starts) == 0 and max(starts) == 90 and len(starts) > 60


# --- noise ---------------------------------------------------------------------------------

def test_noise_is_std_in_scaled_units():
    # Prepare: a constant column and one with missing values.
    X = _data(3000)
    X[:, 3] = 7.0
    X[::4, 5] = np.nan
    std = 0.5

    # Execute
    N = scaled_gaussian_noise(X, std, _rng())

    # Assert: a scaler fitted on X sees transform(X) + std * N(0, 1).
    scaler = NodeScaler(clip=1e6).fit(X)
    eps = (scaler.transform(N).astype(np.float64) - scaler.transform(X)) / std
    noisy = np.setdiff1d(np.arange(N_FEATURES), [3, 5])
    observed = ~np.isnan(X[:, 5])
    for e in (eps[:, noisy], eps[observed, 5]):
        # 5 standard errors of the mean, the std and the share within one sigma.
        assert abs(e.mean()) < 5 / np.sqrt(e.size)
        assert abs(e.std() - 1) < 5 / np.sqrt(2 * e.size)
        assert abs((np.abs(e) < 1).mean() - 0.6827) < 5 * np.sqrt(0.68 * 0.32 / e.size)
    assert np.abs(eps[:, noisy].std(axis=0) - 1).max() < 0.1  # every column, not only on average
    np.testing.assert_array_equal(N[:, 3], X[:, 3])
    np.testing.assert_array_equal(np.isnan(N), np.isnan(X))


def test_zero_noise_round_trips():
    X = _data(50)
    np.testing.assert_allclose(scaled_gaussian_noise(X, 0.0, _rng()), X, rtol=1e-12)


# --- contamination -------------------------------------------------------------------------

def _labelled(n_train, n_attack):
    """Benign rows with column 0 = -1; attack rows with column 0 = their index."""
    train, attack = _data(n_train, 1), _data(n_attack, 2)
    train[:, 0] = -1
    attack[:, 0] = np.arange(n_attack)
    return train, attack


def test_contaminate_share_and_disjointness():
    # Prepare
    train, attack = _labelled(900, 500)

    # Execute
    mixed, rest, taken = contaminate(train, attack, 0.1, _rng())

    # Assert
    is_attack = mixed[:, 0] >= 0
    assert len(mixed) == 1000 and is_attack.sum() == 100  # round(0.1 * 900 / 0.9)
    assert len(np.unique(taken)) == 100
    np.testing.assert_array_equal(np.sort(mixed[is_attack, 0]), taken)
    np.testing.assert_array_equal(mixed[is_attack][np.argsort(mixed[is_attack, 0])], attack[taken])
    np.testing.assert_array_equal(rest, np.delete(attack, taken, axis=0))
    assert not np.isin(rest[:, 0], taken).any()
    assert sorted(r.tobytes() for r in mixed[~is_attack]) == sorted(r.tobytes() for r in train)
    assert is_attack[:900].any()  # shuffled, not appended


def test_contaminate_caps_at_available_attacks():
    train, attack = _labelled(100, 30)
    mixed, rest, taken = contaminate(train, attack, 0.9, _rng())
    assert len(mixed) == 130 and len(taken) == 30 and rest.shape == (0, N_FEATURES)


def test_contaminate_zero_fraction_takes_nothing():
    train, attack = _labelled(100, 30)
    mixed, rest, taken = contaminate(train, attack, 0.0, _rng())
    assert len(taken) == 0 and len(mixed) == 100
    np.testing.assert_array_equal(rest, attack)


# --- contract ------------------------------------------------------------------------------

CALLS = {
    "mcar": lambda X: missing_completely_at_random(X, 0.3, _rng()),
    "group": lambda X: missing_feature_group(X, "HH_jit"),
    "blocks": lambda X: missing_row_blocks(X, 0.3, _rng(), block=10),
    "noise": lambda X: scaled_gaussian_noise(X, 1.0, _rng()),
    "contaminate": lambda X: contaminate(X, X[:20], 0.2, _rng())[0],
}


@pytest.mark.parametrize("name", list(CALLS))
def test_input_unchanged(name):
    X = _data(100)
    X[::7, 2] = np.nan
    original = X.copy()
    out = CALLS[name](X)
    np.testing.assert_array_equal(X, original)
    assert not np.shares_memory(out, X)


@pytest.mark.parametrize("call", [
    lambda: missing_completely_at_random(_data(5), -0.1, _rng()),
    lambda: missing_completely_at_random(_data(5), 1.0, _rng()),
    lambda: missing_completely_at_random(_data(5), np.nan, _rng()),
    lambda: missing_completely_at_random(np.zeros((5, 10)), 0.1, _rng()),
    lambda: missing_feature_group(np.zeros(N_FEATURES), "H"),
    lambda: missing_row_blocks(_data(5), 1.5, _rng()),
    lambda: missing_row_blocks(_data(5), 0.1, _rng(), block=0),
    lambda: missing_row_blocks(_data(5), 0.1, _rng(), block=2.5),
    lambda: scaled_gaussian_noise(_data(5), -1.0, _rng()),
    lambda: scaled_gaussian_noise(_data(5), np.inf, _rng()),
    lambda: scaled_gaussian_noise(np.full((2, N_FEATURES), np.inf), 1.0, _rng()),
    lambda: contaminate(_data(5), _data(5), 1.0, _rng()),
    lambda: contaminate(_data(5), np.zeros((5, 3)), 0.1, _rng()),
])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_seed_instead_of_generator_raises_type_error():
    with pytest.raises(TypeError, match="Generator"):
        missing_completely_at_random(_data(5), 0.1, 0)
