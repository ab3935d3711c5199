"""The labelled split of the supervised baselines: a disjoint share of each node's attack rows."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from fedcl.data import NodeSplit

__all__ = ["LabelledNode", "LabelledData", "labelled_split"]


@dataclass(frozen=True, eq=False)
class LabelledNode:
    """One node's labelled rows (1 = attack) for training and early stopping.

    Attributes
    ----------
    name : str
        Node name (``"pooled"`` for :meth:`LabelledData.pooled`).
    X_train : ndarray of shape (n_train, 115), float64
        The node's benign training rows, then its labelled attack rows.
    y_train : ndarray of shape (n_train,), int64
    X_val : ndarray of shape (n_val, 115), float64
        The node's benign validation rows, then its validation attack rows.
    y_val : ndarray of shape (n_val,), int64
    train_attack_rows : ndarray of shape (k_train,), int64
        Positions, in the node's original ``NodeSplit.attack``, of the attack rows in ``X_train``.
    val_attack_rows : ndarray of shape (k_val,), int64
        Same for ``X_val``.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    train_attack_rows: np.ndarray
    val_attack_rows: np.ndarray


@dataclass(frozen=True, eq=False)
class LabelledData:
    """The labelled rows of every node; iterate for per-node training, :meth:`pooled` for one set.

    Attributes
    ----------
    nodes : tuple of LabelledNode
        In the order of the splits given to :func:`labelled_split`.
    """

    nodes: tuple[LabelledNode, ...]

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def pooled(self) -> LabelledNode:
        """All nodes' labelled rows in one set (the centralised setting); row positions are dropped."""
        empty = np.empty(0, dtype=np.int64)
        return LabelledNode(
            "pooled",
            np.vstack([n.X_train for n in self.nodes]), np.concatenate([n.y_train for n in self.nodes]),
            np.vstack([n.X_val for n in self.nodes]), np.concatenate([n.y_val for n in self.nodes]),
            empty, empty,
        )


def _check_fractions(attack_fraction, val_attack_fraction) -> None:
    if not 0.0 < attack_fraction < 1.0:
        raise ValueError(f"attack_fraction must be in (0, 1), got {attack_fraction!r}")
    if not 0.0 <= val_attack_fraction < 1.0 or attack_fraction + val_attack_fraction >= 1.0:
        raise ValueError(
            "val_attack_fraction must be in [0, 1) and leave attack rows for testing "
            f"(attack_fraction + val_attack_fraction < 1), got {val_attack_fraction!r}"
        )


def _draw(families: np.ndarray, fractions: tuple[float, float], rng: np.random.Generator):
    """Positions for training and validation, drawn per family (stratified), each sorted."""
    train, val = [], []
    for family in np.unique(families):  # sorted: the draw does not depend on row order of families
        rows = np.flatnonzero(families == family)
        rows = rows[rng.permutation(len(rows))]
        n_train = int(round(fractions[0] * len(rows)))
        n_val = int(round(fractions[1] * len(rows)))
        train.append(rows[:n_train])
        val.append(rows[n_train:n_train + n_val])
    if not train:  # a node without attack rows
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.sort(np.concatenate(train)).astype(np.int64), np.sort(np.concatenate(val)).astype(np.int64)


def labelled_split(splits: list[NodeSplit], attack_fraction: float = 0.3, val_attack_fraction: float = 0.1,
                   seed: int = 0) -> tuple[LabelledData, list[NodeSplit]]:
    """Give the supervised baselines their own labelled rows, disjoint from every test row.

    Per node, a seeded random ``attack_fraction`` of its attack rows (stratified by
    ``attack_family``: the same fraction of every family, rounded) joins its benign training
    rows to form the labelled training set, and another ``val_attack_fraction`` of its attack rows
    joins its benign validation rows to form the labelled validation set (early stopping only:
    the classifiers keep the threshold at 0.5, see :class:`MLPClassifier`). Those attack rows are
    removed from the returned splits, so what remains in ``attack`` (and all of ``test_benign``,
    which is untouched) is held out. The benign rows are the very rows the unsupervised detectors
    train and calibrate on, so both kinds of detector are tested on the same benign rows; only the
    attack rows tested on differ (the supervised rows lose the labelled share).

    The draw of a node depends on ``seed`` and the node's name, not on its position in ``splits``.
    Pass splits from :func:`fedcl.pipeline.load_splits`, which applies the leakage guard.

    Parameters
    ----------
    splits : list of NodeSplit
        Guarded per-node splits.
    attack_fraction : float, default=0.3
        Share of each node's attack rows (per family) for labelled training.
    val_attack_fraction : float, default=0.1
        Share of each node's attack rows (per family) for labelled validation; 0 leaves the
        validation set benign only.
    seed : int, default=0

    Returns
    -------
    labelled : LabelledData
        One :class:`LabelledNode` per split, same order.
    test_splits : list of NodeSplit
        The splits with the labelled attack rows removed from ``attack`` and ``attack_family``
        (remaining rows keep their order); benign sets unchanged.

    Raises
    ------
    ValueError
        If a fraction is out of range.
    """
    _check_fractions(attack_fraction, val_attack_fraction)
    nodes, test_splits = [], []
    for s in splits:
        rng = np.random.default_rng([seed, zlib.crc32(s.name.encode())])
        train_rows, val_rows = _draw(np.asarray(s.attack_family), (attack_fraction, val_attack_fraction), rng)
        keep = np.ones(len(s.attack), dtype=bool)
        keep[train_rows] = False
        keep[val_rows] = False
        nodes.append(LabelledNode(
            s.name,
            np.vstack([s.train, s.attack[train_rows]]),
            np.r_[np.zeros(len(s.train), np.int64), np.ones(len(train_rows), np.int64)],
            np.vstack([s.val, s.attack[val_rows]]),
            np.r_[np.zeros(len(s.val), np.int64), np.ones(len(val_rows), np.int64)],
            train_rows, val_rows,
        ))
        test_splits.append(replace(s, attack=s.attack[keep], attack_family=np.asarray(s.attack_family)[keep]))
    return LabelledData(tuple(nodes)), test_splits
