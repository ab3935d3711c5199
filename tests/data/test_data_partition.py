"""Tests for dirichlet_partition and quantity_skew_partition."""

import numpy as np
import pytest

from fedcl.data import MIN_BENIGN, N_FEATURES, NodeData, dirichlet_partition, quantity_skew_partition

N_SOURCES = 4


def make_nodes(n_benign=100, n_attack=30, n_test=None, seed=0):
    """N_SOURCES nodes of random rows; column 0 holds the source index (rows are traceable)."""
    rng = np.random.default_rng(seed)
    nodes = []
    for i in range(N_SOURCES):
        # Sources differ in scale so k-means has structure to find.
        benign = rng.normal(10.0 ** i, 1.0, size=(n_benign, N_FEATURES))
        attack = rng.normal(-(10.0 ** i), 1.0, size=(n_attack, N_FEATURES))
        test = None if n_test is None else rng.normal(10.0 ** i, 1.0, size=(n_test, N_FEATURES))
        for rows in (benign, attack) + (() if test is None else (test,)):
            rows[:, 0] = i
        family = np.array([f"mirai.udp{i}"] * n_attack)
        nodes.append(NodeData(f"dev{i}", benign, attack, family, test, True))
    return nodes


def sorted_bytes(rows):
    return sorted(r.tobytes() for r in rows)


def max_shares(out):
    """Per node: largest share of its benign rows from one source."""
    return [np.bincount(n.benign[:, 0].astype(int), minlength=N_SOURCES).max() / len(n.benign)
            for n in out]


PARTITIONS = [
    lambda nodes, seed: dirichlet_partition(nodes, 6, alpha=0.5, seed=seed),
    lambda nodes, seed: dirichlet_partition(nodes, 6, alpha=0.5, seed=seed, groups="clusters"),
    lambda nodes, seed: quantity_skew_partition(nodes, 6, ratio=5.0, seed=seed),
]
IDS = ["source", "clusters", "quantity"]


@pytest.mark.parametrize("partition", PARTITIONS, ids=IDS)
def test_seeded_determinism(partition):
    nodes = make_nodes(n_test=20)

    a, b, c = partition(nodes, 1), partition(nodes, 1), partition(nodes, 2)

    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.benign, y.benign)
        np.testing.assert_array_equal(x.attack, y.attack)
        np.testing.assert_array_equal(x.attack_family, y.attack_family)
        np.testing.assert_array_equal(x.benign_test, y.benign_test)
    assert any(not np.array_equal(x.benign, y.benign) for x, y in zip(a, c))


@pytest.mark.parametrize("partition", PARTITIONS, ids=IDS)
@pytest.mark.parametrize("n_test", [None, 20])
def test_every_row_appears_exactly_once(partition, n_test):
    nodes = make_nodes(n_test=n_test)

    out = partition(nodes, 0)

    assert [n.name for n in out] == [f"node-{k}" for k in range(1, 7)]
    assert all(not n.ordered for n in out)
    for field in ("benign", "attack"):
        got = np.concatenate([getattr(n, field) for n in out])
        want = np.concatenate([getattr(n, field) for n in nodes])
        assert got.shape == want.shape
        assert sorted_bytes(got) == sorted_bytes(want)
    # Families travel with their rows.
    for n in out:
        assert all(f == f"mirai.udp{int(s)}" for f, s in zip(n.attack_family, n.attack[:, 0]))
    if n_test is None:
        assert all(n.benign_test is None for n in out)
    else:
        got = np.concatenate([n.benign_test for n in out])
        assert sorted_bytes(got) == sorted_bytes(np.concatenate([n.benign_test for n in nodes]))


def test_small_alpha_skews_large_alpha_mixes():
    nodes = make_nodes()

    skewed = [s for seed in range(5) for s in max_shares(dirichlet_partition(nodes, 5, 0.05, seed))]
    mixed = max_shares(dirichlet_partition(nodes, 5, 1000.0, seed=0))

    assert np.mean(skewed) > 0.8
    assert max(mixed) < 1 / N_SOURCES + 0.1


def test_source_attack_follows_benign_shares():
    nodes = make_nodes(n_benign=200, n_attack=200)

    out = dirichlet_partition(nodes, 3, alpha=1000.0, seed=0)

    for n in out:
        b = np.bincount(n.benign[:, 0].astype(int), minlength=N_SOURCES) / 200
        a = np.bincount(n.attack[:, 0].astype(int), minlength=N_SOURCES) / 200
        np.testing.assert_allclose(a, b, atol=0.02)


def test_clusters_attack_split_evenly():
    out = dirichlet_partition(make_nodes(n_attack=30), 6, alpha=0.1, groups="clusters")

    assert [len(n.attack) for n in out] == [20] * 6


def test_quantity_skew_sizes_span_ratio():
    nodes = make_nodes(n_benign=250)

    out = quantity_skew_partition(nodes, 5, ratio=10.0, seed=0)

    sizes = [len(n.benign) for n in out]
    assert sizes == sorted(sizes)
    assert sizes[-1] / sizes[0] == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize("groups", ["source", "clusters"])
def test_every_node_gets_min_benign(groups):
    nodes = make_nodes(n_benign=10)  # 40 rows for 12 nodes: tiny alpha leaves many empty

    out = dirichlet_partition(nodes, 12, alpha=0.01, seed=3, groups=groups)

    assert min(len(n.benign) for n in out) >= MIN_BENIGN
    assert sum(len(n.benign) for n in out) == 40
    q = quantity_skew_partition(nodes, 12, ratio=100.0)
    assert min(len(n.benign) for n in q) >= MIN_BENIGN


@pytest.mark.parametrize("partition", [
    lambda nodes, **kw: dirichlet_partition(nodes, 8, alpha=0.05, seed=0, **kw),
    lambda nodes, **kw: dirichlet_partition(nodes, 8, alpha=0.05, seed=0, groups="clusters", **kw),
    lambda nodes, **kw: quantity_skew_partition(nodes, 8, ratio=100.0, seed=0, **kw),
], ids=IDS)
def test_min_benign_tops_up_every_node(partition):
    nodes = make_nodes()  # 400 benign rows for 8 nodes: 40 each is feasible, tiny alpha leaves some near empty

    default, topped = partition(nodes), partition(nodes, min_benign=40)

    assert min(len(n.benign) for n in default) < 40
    assert min(len(n.benign) for n in topped) >= 40
    assert sorted_bytes(np.concatenate([n.benign for n in topped])) == sorted_bytes(
        np.concatenate([n.benign for n in nodes]))


def test_one_node_gets_everything():
    out = dirichlet_partition(make_nodes(), 1, alpha=0.1)

    assert len(out) == 1 and len(out[0].benign) == 100 * N_SOURCES


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda n: dirichlet_partition(n, 3, alpha=0.0), "alpha"),
        (lambda n: dirichlet_partition(n, 3, alpha=-1.0), "alpha"),
        (lambda n: dirichlet_partition(n, 0, alpha=1.0), "n_nodes"),
        (lambda n: dirichlet_partition(n, 3, alpha=1.0, groups="device"), "groups"),
        (lambda n: dirichlet_partition(n, 1000, alpha=1.0), "benign rows"),
        (lambda n: dirichlet_partition([], 3, alpha=1.0), "empty"),
        (lambda n: dirichlet_partition(n, 5, alpha=1.0, min_benign=81), "benign rows"),
        (lambda n: dirichlet_partition(n, 3, alpha=1.0, min_benign=0), "min_benign"),
        (lambda n: quantity_skew_partition(n, 5, min_benign=81), "benign rows"),
        (lambda n: quantity_skew_partition(n, 3, ratio=0.5), "ratio"),
        (lambda n: quantity_skew_partition(n, 0), "n_nodes"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(make_nodes())
