"""Islands: small, dense groups of embeddings far from the rest, as attack rows caught in a benign
training window (an infected device) are; what a node leaves out of its references and its training."""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import linkage

# An island: a group of training embeddings that formed at some linkage distance b (z̃ units, single
# linkage) and joins the rest only at d >= b + _ISLAND_GAP and d >= _ISLAND_RATIO * b. Attack rows
# are repetitive, so their groups form at small b and stay apart; benign traffic is a continuum whose
# groups merge soon after they form. Chosen on the development seed (docs/results.md, contamination).
_ISLAND_GAP = 2.0
_ISLAND_RATIO = 2.0
_ISLAND_MIN_ROWS = 5  # a lone far row is as likely rare benign traffic: dropping those cost clean AUROC
_ISLAND_MAX_SHARE = 0.05  # of the rows, per island: the node's own traffic modes are larger
_ISLAND_SAMPLE = 4096  # single linkage holds (rows²) distances: larger nodes look at a random sample
_ROWS_PER_PASS = 2048  # rows of the (rows, sample) distance block when the other rows follow the sample


def island_rows(z: np.ndarray, trim_fraction: float, random_state: int = 0) -> np.ndarray:
    """The rows of ``z`` that lie in islands, most isolated islands first, within a budget.

    Parameters
    ----------
    z : ndarray of shape (rows, dim)
        A node's normalised embeddings z̃ (NaN-free).
    trim_fraction : float
        At most this share of the rows is marked; an island that does not fit whole is kept.
    random_state : int, default=0
        Seed of the sample the islands are looked for in, on nodes of over ``_ISLAND_SAMPLE`` rows
        (each row then follows its nearest sampled row).

    Returns
    -------
    islands : ndarray of shape (rows,), bool
    """
    n = len(z)
    if trim_fraction == 0 or n < 2 * _ISLAND_MIN_ROWS:
        return np.zeros(n, dtype=bool)
    sample = np.arange(n)
    if n > _ISLAND_SAMPLE:
        sample = np.sort(np.random.default_rng(random_state).choice(n, _ISLAND_SAMPLE, replace=False))
    m = len(sample)
    # tree[i] = (a, b, height, size): nodes a and b join at that distance into node m + i (leaves: 0 … m−1)
    tree = linkage(z[sample].astype(np.float64), "single")
    a, b = tree[:, 0].astype(np.int64), tree[:, 1].astype(np.int64)
    size = np.r_[np.ones(m), tree[:, 3]]
    birth = np.r_[np.zeros(m), tree[:, 2]]  # the distance at which a node formed
    death = np.full(2 * m - 1, np.inf)  # the distance at which it joins another
    death[a], death[b] = tree[:, 2], tree[:, 2]
    life = death - birth
    island = ((size >= _ISLAND_MIN_ROWS) & (size <= _ISLAND_MAX_SHARE * m) & (life >= _ISLAND_GAP)
              & (death >= _ISLAND_RATIO * birth))
    dropped = np.zeros(m, dtype=bool)
    for node in np.argsort(-life, kind="stable"):
        if not island[node] or dropped.sum() + size[node] > trim_fraction * m:
            continue
        leaves, stack = [], [node]
        while stack:
            x = stack.pop()
            if x < m:
                leaves.append(x)
            else:
                stack += [a[x - m], b[x - m]]
        if not dropped[leaves].any():  # an island inside (or around) one already dropped
            dropped[leaves] = True
    if m == n:
        return dropped
    # Each row follows its nearest sampled row.
    zt, zs = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)), torch.from_numpy(z[sample].astype(np.float32))
    nearest = torch.cat([torch.cdist(chunk, zs).argmin(dim=1) for chunk in zt.split(_ROWS_PER_PASS)])
    return dropped[nearest.numpy()]
