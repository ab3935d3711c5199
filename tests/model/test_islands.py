"""island_rows: small, dense groups of embeddings far from the rest."""

import numpy as np
import pytest

from fedcl.model import _islands, island_rows


def blob_and_island(n=500, island=20, seed=0):
    """Embeddings: a Gaussian blob (n, 8) and, 10 units away, ``island`` near-copies of one row."""
    rng = np.random.default_rng(seed)
    z = np.vstack([rng.normal(size=(n, 8)), 10 + 0.01 * rng.normal(size=(island, 8))])
    return z, np.r_[np.zeros(n, bool), np.ones(island, bool)]


@pytest.mark.parametrize("sample", [4096, 200])  # every row, or a sample the other rows follow
def test_island_rows_finds_a_planted_dense_group_and_nothing_in_a_blob(sample, monkeypatch):
    monkeypatch.setattr(_islands, "_ISLAND_SAMPLE", sample)
    z, planted = blob_and_island()

    np.testing.assert_array_equal(island_rows(z, 0.1), planted)
    assert not island_rows(z[~planted], 0.1).any()
    assert not island_rows(z, 0.0).any()
    assert not island_rows(z, 0.03).any()  # 20 of 520 rows is over the budget: the island stays whole


def test_island_rows_keeps_a_lone_far_row():
    z, _ = blob_and_island(island=0)
    z[0] = 10  # one rare row far away: as likely rare benign traffic as an attack

    assert not island_rows(z, 0.1).any()
