"""Tests for split_node."""

import numpy as np
import pytest

from fedcl.data import N_FEATURES, DataError, NodeData, split_node


def make_node(n, *, ordered=True, n_test=None, n_attack=4):
    """Node whose benign row i is filled with the value i (rows are identifiable)."""
    benign = np.repeat(np.arange(n, dtype=float)[:, None], N_FEATURES, axis=1)
    test = None if n_test is None else np.full((n_test, N_FEATURES), -1.0)
    attack = np.full((n_attack, N_FEATURES), 7.0)
    family = np.full(n_attack, "mirai.udp")
    return NodeData("node", benign, attack, family, test, ordered)


def ids(rows):
    return rows[:, 0].astype(int)


@pytest.mark.parametrize("ordered", [True, False])
def test_three_disjoint_sets_cover_benign(ordered):
    node = make_node(100, ordered=ordered)

    split = split_node(node, val_fraction=0.2, test_fraction=0.1, seed=3)

    tr, va, te = ids(split.train), ids(split.val), ids(split.test_benign)
    assert (len(tr), len(va), len(te)) == (70, 20, 10)
    assert len(set(tr) | set(va) | set(te)) == 100
    assert split.attack.shape == (4, N_FEATURES) and list(split.attack_family) == ["mirai.udp"] * 4


def test_ordered_node_is_split_in_time():
    split = split_node(make_node(10, ordered=True))

    np.testing.assert_array_equal(ids(split.train), np.arange(6))
    np.testing.assert_array_equal(ids(split.val), [6, 7])
    np.testing.assert_array_equal(ids(split.test_benign), [8, 9])


def test_unordered_split_is_seeded():
    node = make_node(50, ordered=False)

    a, b, c = split_node(node, seed=1), split_node(node, seed=1), split_node(node, seed=2)

    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(ids(a.val), ids(c.val))
    assert not np.array_equal(ids(a.train), np.arange(len(a.train)))  # really shuffled


def test_explicit_benign_test_is_used_as_is():
    node = make_node(10, ordered=False, n_test=5)

    split = split_node(node, val_fraction=0.3)

    assert (len(split.train), len(split.val)) == (7, 3)
    np.testing.assert_array_equal(split.test_benign, node.benign_test)
    assert set(ids(split.train)) | set(ids(split.val)) == set(range(10))


def test_split_returns_copies():
    node = make_node(10)
    split = split_node(node)
    split.train[:] = 99
    assert node.benign[0, 0] == 0


@pytest.mark.parametrize(
    "n, n_test, sizes", [(3, None, (1, 1, 1)), (2, 4, (1, 1, 4)), (4, None, (1, 1, 2))]
)
def test_smallest_nodes_get_one_row_each(n, n_test, sizes):
    split = split_node(make_node(n, n_test=n_test), val_fraction=0.45, test_fraction=0.45)
    assert (len(split.train), len(split.val), len(split.test_benign)) == sizes


@pytest.mark.parametrize("n, n_test", [(2, None), (1, 3), (0, None)])
def test_too_few_benign_rows(n, n_test):
    with pytest.raises(DataError, match="'node' has .* benign rows, at least"):
        split_node(make_node(n, n_test=n_test))


def test_bad_fractions():
    with pytest.raises(ValueError, match="val_fraction"):
        split_node(make_node(10), val_fraction=0)
    with pytest.raises(ValueError, match="< 1"):
        split_node(make_node(10), val_fraction=0.5, test_fraction=0.5)
