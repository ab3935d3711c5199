"""Re-partition pooled nodes into simulated non-IID federations.

These are simulation tools for experiments: they pool the rows of every
input node in one process, which a real federation never does. Do not use
them to build a production federation.
"""

import numpy as np
from sklearn.cluster import KMeans

from fedcl.errors import InputError

from ._preprocess import signed_log1p
from ._readers import NodeData

__all__ = ["GROUPINGS", "MIN_BENIGN", "dirichlet_partition", "home_cluster_partition", "quantity_skew_partition"]

#: Group names accepted by :func:`dirichlet_partition`.
GROUPINGS = ("source", "clusters")

#: Default fewest benign rows an output node gets (split_node needs train, val and test).
MIN_BENIGN = 3

# k of the k-means used by groups="clusters": N-BaIoT has 9 devices, so 8
# clusters give a comparable number of feature "modes" without labels.
_N_CLUSTERS = 8


class _Pool:
    """Rows of all input nodes stacked, with the index of the node each came from."""

    def __init__(self, nodes: list[NodeData]):
        width = nodes[0].benign.shape[1]
        self.benign = np.concatenate([n.benign for n in nodes])
        self.benign_src = np.concatenate([np.full(len(n.benign), i) for i, n in enumerate(nodes)])
        self.attack = np.concatenate([n.attack.reshape(-1, width) for n in nodes])
        self.attack_src = np.concatenate([np.full(len(n.attack), i) for i, n in enumerate(nodes)])
        self.family = np.concatenate([np.asarray(n.attack_family) for n in nodes])
        # benign_test is kept only if some input has one; inputs without it add no rows.
        self.has_test = any(n.benign_test is not None for n in nodes)
        tests = [n.benign_test.reshape(-1, width) if n.benign_test is not None
                 else np.empty((0, width)) for n in nodes]
        self.test = np.concatenate(tests)
        self.test_src = np.concatenate([np.full(len(t), i) for i, t in enumerate(tests)])
        self.columns, self.dropped_columns = nodes[0].columns, nodes[0].dropped_columns  # read alike for all


def _check(nodes, n_nodes, min_benign):
    """Raise ValueError for an empty input, n_nodes < 1, min_benign < 1 or too few benign rows."""
    if not nodes:
        raise ValueError("nodes is empty")
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    if min_benign < 1:
        raise ValueError(f"min_benign must be >= 1, got {min_benign}")
    total = sum(len(n.benign) for n in nodes)
    if total < min_benign * n_nodes:
        raise InputError(
            f"{total} benign rows cannot give {n_nodes} nodes {min_benign} benign rows each"
        )


def _split_by(idx, p, rng):
    """Shuffle the row indices ``idx`` and cut them into len(p) parts of shares p."""
    idx = rng.permutation(idx)
    # Rounded cumulative cut points: part sizes sum exactly to len(idx).
    cuts = np.round(np.cumsum(p)[:-1] * len(idx)).astype(int)
    return np.split(idx, cuts)


def _allocate(labels, props, rng):
    """Per-node row indices: rows of group g are split by props[g]."""
    n_nodes = props.shape[1]
    parts = [[] for _ in range(n_nodes)]
    for g in np.unique(labels):
        for k, chunk in enumerate(_split_by(np.flatnonzero(labels == g), props[g], rng)):
            parts[k].append(chunk)
    return [np.concatenate(p) if p else np.empty(0, dtype=int) for p in parts]


def _top_up(parts, labels, rng, min_benign):
    """Move benign rows from the largest node to nodes with fewer than min_benign.

    Re-drawing rarely helps: at small alpha most nodes of a Dirichlet draw are
    near empty. The moved rows come from the donor's largest group, so a
    topped-up node stays as skewed as the draw made it.
    """
    for k in range(len(parts)):
        while len(parts[k]) < min_benign:
            donor = max(range(len(parts)), key=lambda j: len(parts[j]))
            rows = parts[donor]
            values, counts = np.unique(labels[rows], return_counts=True)
            candidates = np.flatnonzero(labels[rows] == values[np.argmax(counts)])
            need = min(min_benign - len(parts[k]), len(candidates), len(rows) - min_benign)
            take = rng.choice(candidates, size=need, replace=False)
            parts[k] = np.concatenate([parts[k], rows[take]])
            parts[donor] = np.delete(rows, take)
    return parts


def _build(pool, benign_parts, attack_parts, test_parts, rng):
    """Output nodes "node-1" … "node-N" from per-node row indices, rows shuffled."""
    out = []
    for k, (b, a, t) in enumerate(zip(benign_parts, attack_parts, test_parts), start=1):
        # Parts are built group by group; shuffle so no node keeps source blocks.
        b, a, t = rng.permutation(b), rng.permutation(a), rng.permutation(t)
        out.append(NodeData(
            name=f"node-{k}",
            benign=pool.benign[b],
            attack=pool.attack[a],
            attack_family=pool.family[a],
            benign_test=pool.test[t] if pool.has_test else None,
            ordered=False,
            columns=pool.columns,
            dropped_columns=pool.dropped_columns,
        ))
    return out


def dirichlet_partition(
    nodes: list[NodeData], n_nodes: int, alpha: float, seed=0, groups: str = "source",
    min_benign: int = MIN_BENIGN,
) -> list[NodeData]:
    """Re-split pooled nodes into ``n_nodes`` nodes with Dirichlet group skew.

    Simulation tool for experiments only: it pools every input node's rows,
    which no real federation can do. For each group ``g`` it draws shares
    ``p_g ~ Dirichlet(alpha * 1)`` over the new nodes and splits that group's
    benign rows by ``p_g`` (the usual label-skew recipe). Small ``alpha``
    gives nodes dominated by one group; large ``alpha`` gives near-identical
    mixes.

    Parameters
    ----------
    nodes : list of NodeData
        Input nodes; their rows are pooled.
    n_nodes : int
        Number of output nodes, at least 1.
    alpha : float
        Dirichlet concentration, > 0.
    seed : int, default=0
        Seed of the numpy Generator (and of k-means).
    groups : {"source", "clusters"}, default="source"
        ``"source"``: a row's group is the input node it came from (the
        device in UCI/Kaggle layouts). ``"clusters"``: groups are 8 k-means
        clusters of the benign rows on signed-log1p features, found without
        labels (feature skew, for data without device labels).
    min_benign : int, default=MIN_BENIGN (3)
        Fewest benign rows any output node gets, at least 1. 3 is enough for
        :func:`split_node`; a node that trains and thresholds a detector
        needs far more (the heterogeneity experiment uses 100).

    Returns
    -------
    nodes : list of NodeData
        ``n_nodes`` nodes named ``"node-1"`` … ``"node-N"``, rows shuffled,
        ``ordered=False``. Every input row appears in exactly one output node.

        - ``benign``: split as above. A node left with fewer than
          ``min_benign`` benign rows gets rows moved from the largest node
          (from its largest group), so the skew of the draw is kept as far
          as possible. ``benign_test`` rows are not topped up: a node can
          end with none.
        - ``attack``: for ``"source"``, each source's attack rows are split by
          the same ``p_g`` as its benign rows, so a node attacks like the
          devices it holds. For ``"clusters"``, attack rows have no cluster
          of their own (clusters are fit on benign rows), so they are split
          evenly at random.
        - ``benign_test``: None if no input has one; otherwise split with the
          benign shares ``p_g`` (for ``"clusters"``, test rows are assigned
          to their nearest cluster first).

    Raises
    ------
    ValueError
        If ``alpha <= 0``, ``n_nodes < 1``, ``min_benign < 1``, ``groups`` is
        unknown, ``nodes`` is empty or there are fewer than
        ``min_benign * n_nodes`` benign rows.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if groups not in GROUPINGS:
        raise ValueError(f"groups must be one of {GROUPINGS}, got {groups!r}")
    return _deal_groups(nodes, n_nodes, seed, groups, min_benign,
                        lambda n_groups, rng: rng.dirichlet(np.full(n_nodes, float(alpha)), size=n_groups))


def _deal_groups(nodes, n_nodes, seed, groups, min_benign, shares) -> list[NodeData]:
    """Deal each group's rows over the nodes by ``shares(n_groups, rng)[g, k]`` (rows: groups, sum 1)."""
    _check(nodes, n_nodes, min_benign)
    rng = np.random.default_rng(seed)
    pool = _Pool(nodes)

    if groups == "source":
        n_groups = len(nodes)
        benign_labels, test_labels = pool.benign_src, pool.test_src
    else:
        k = min(_N_CLUSTERS, len(pool.benign))
        km = KMeans(n_clusters=k, n_init=1, random_state=int(rng.integers(2**31 - 1)))
        # Signed log tames the heavy tails for k-means; a missing cell counts as 0.
        benign_labels = km.fit_predict(np.nan_to_num(signed_log1p(pool.benign)))
        test_labels = (km.predict(np.nan_to_num(signed_log1p(pool.test))) if len(pool.test)
                       else np.empty(0, dtype=int))
        n_groups = k

    props = shares(n_groups, rng)  # props[g, k]: share of group g's rows that go to output node k
    benign_parts = _top_up(_allocate(benign_labels, props, rng), benign_labels, rng, min_benign)
    test_parts = _allocate(test_labels, props, rng)
    if groups == "source":
        attack_parts = _allocate(pool.attack_src, props, rng)
    else:
        attack_parts = np.array_split(rng.permutation(len(pool.attack)), n_nodes)
    return _build(pool, benign_parts, attack_parts, test_parts, rng)


def home_cluster_partition(nodes: list[NodeData], n_nodes: int, seed=0, spill=0.1,
                           min_benign: int = MIN_BENIGN) -> list[NodeData]:
    """Deal pooled rows so each output node holds mostly one or two unlabelled clusters, like a device.

    Simulation tool for experiments only (it pools all rows, see :func:`dirichlet_partition`). The
    benign rows are grouped into 8 k-means clusters (as ``groups="clusters"`` there). Node ``k``
    (0-based) has the home clusters ``k mod 8`` and ``(k + 1) mod 8``; each cluster gives
    ``1 − spill`` of its rows, in equal parts, to the nodes it is home to, and ``spill`` in equal
    parts to every node. Attack rows are dealt evenly at random; held-out benign test rows follow
    their nearest cluster.

    Parameters
    ----------
    nodes : list of NodeData
    n_nodes : int
    seed : int, default=0
    spill : float, default=0.1
        Share of each cluster spread over all nodes (0: a node sees only its home clusters).
    min_benign : int, default=MIN_BENIGN

    Returns
    -------
    nodes : list of NodeData
        Named ``"node-1"`` … ``"node-N"``, ``ordered=False``.
    """
    if not 0 <= spill <= 1:
        raise ValueError(f"spill must be in [0, 1], got {spill}")

    def shares(n_groups: int, rng) -> np.ndarray:
        home = np.zeros((n_groups, n_nodes))
        for k in range(n_nodes):
            home[[k % n_groups, (k + 1) % n_groups], k] = 1.0
        home /= np.maximum(home.sum(axis=1, keepdims=True), 1.0)  # a cluster nobody calls home: all spill
        return (1 - spill) * home + (spill + (1 - spill) * (home.sum(axis=1, keepdims=True) == 0)) / n_nodes

    return _deal_groups(nodes, n_nodes, seed, "clusters", min_benign, shares)


def quantity_skew_partition(
    nodes: list[NodeData], n_nodes: int, ratio=10.0, seed=0, min_benign: int = MIN_BENIGN
) -> list[NodeData]:
    """Re-split pooled nodes IID into ``n_nodes`` nodes of skewed sizes.

    Simulation tool for experiments only (it pools all rows, see
    :func:`dirichlet_partition`). Node ``k`` (0-based) gets the share
    ``ratio ** (k / (n_nodes - 1))`` of the rows, normalised, so sizes are
    geometric from smallest to largest with largest / smallest ≈ ``ratio``.
    Rows are drawn uniformly at random, so every node has the same mix.

    Parameters
    ----------
    nodes : list of NodeData
        Input nodes; their rows are pooled.
    n_nodes : int
        Number of output nodes, at least 1.
    ratio : float, default=10.0
        Size of the largest node over the smallest, >= 1.
    seed : int, default=0
        Seed of the numpy Generator.
    min_benign : int, default=MIN_BENIGN (3)
        Fewest benign rows any output node gets, at least 1.

    Returns
    -------
    nodes : list of NodeData
        ``n_nodes`` nodes named ``"node-1"`` (smallest) … ``"node-N"``
        (largest), ``ordered=False``. Benign, attack and ``benign_test``
        rows (None if no input has one) are each split with the same
        shares. A node with fewer than ``min_benign`` benign rows gets rows
        moved from the largest node.

    Raises
    ------
    ValueError
        If ``ratio < 1``, ``n_nodes < 1``, ``min_benign < 1``, ``nodes`` is
        empty or there are fewer than ``min_benign * n_nodes`` benign rows.
    """
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    _check(nodes, n_nodes, min_benign)
    rng = np.random.default_rng(seed)
    pool = _Pool(nodes)

    steps = np.arange(n_nodes) / max(n_nodes - 1, 1)
    shares = float(ratio) ** steps
    shares /= shares.sum()
    # One group holding every row: _allocate then is a plain IID split by shares.
    one = shares[None, :]
    benign_labels = np.zeros(len(pool.benign), dtype=int)
    benign_parts = _top_up(_allocate(benign_labels, one, rng), benign_labels, rng, min_benign)
    attack_parts = _allocate(np.zeros(len(pool.attack), dtype=int), one, rng)
    test_parts = _allocate(np.zeros(len(pool.test), dtype=int), one, rng)
    return _build(pool, benign_parts, attack_parts, test_parts, rng)
