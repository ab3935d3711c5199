"""Per-node train / validation / test split of benign rows."""

import hashlib
from dataclasses import dataclass

import numpy as np

from fedcl.errors import ConfigError, check_fraction

from ._errors import DataError
from ._readers import NodeData
from ._schema import COLUMNS

__all__ = ["ROW_SETS", "NodeSplit", "split_node"]

ROW_SETS = ("train", "val", "test_benign", "attack")  # every row array of a NodeSplit


@dataclass(frozen=True, eq=False)
class NodeSplit:
    """One node's rows, split for training and evaluation.

    The three benign sets are disjoint (as row sets of the node); attack rows
    are used for testing only.

    Attributes
    ----------
    name : str
        Node name.
    train : ndarray of shape (n_train, n_features), float64 (float32 for float32 nodes)
        Benign rows to fit on (``n_features``: 115 for N-BaIoT).
    val : ndarray of shape (n_val, n_features), same dtype
        Benign rows for early stopping and thresholds.
    test_benign : ndarray of shape (n_test, n_features), same dtype
        Benign rows for evaluation.
    attack : ndarray of shape (m, n_features), same dtype
        Attack rows, evaluation only (:func:`fedcl.pipeline.load_splits` may keep them in a memory-mapped file).
    attack_family : ndarray of shape (m,), str
        Family of each attack row.
    columns : tuple of str
        Name of each column (``NodeData.columns``).
    dropped_columns : tuple of str
        Header columns not read (``NodeData.dropped_columns``).
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test_benign: np.ndarray
    attack: np.ndarray
    attack_family: np.ndarray
    columns: tuple[str, ...] = COLUMNS
    dropped_columns: tuple[str, ...] = ()

    def training_digest(self) -> str:
        """A digest of the training rows and their columns: what a node trained on, without the rows."""
        digest = hashlib.sha1(np.ascontiguousarray(self.train).view(np.uint8))  # no copy of the rows
        digest.update("\0".join(self.columns).encode())
        return digest.hexdigest()


def split_node(node: NodeData, val_fraction=0.2, test_fraction=0.2, seed=0) -> NodeSplit:
    """Split a node's benign rows into disjoint train, validation and test sets.

    If ``node.benign_test`` is given it is the test set, and ``node.benign``
    is split into train and validation only. Otherwise ``node.benign`` is
    split into train, validation and test. Ordered nodes (capture order) are
    split in time: first rows train, then validation, then test, so the model
    is never evaluated on traffic older than what it trained on. Unordered
    nodes are split by a permutation seeded with ``seed``; each part keeps
    file order.

    Parameters
    ----------
    node : NodeData
        Node to split.
    val_fraction : float, default=0.2
        Fraction of ``node.benign`` for validation (at least 1 row).
    test_fraction : float, default=0.2
        Fraction of ``node.benign`` for testing (at least 1 row); ignored when
        ``node.benign_test`` is given.
    seed : int, default=0
        Seed of the permutation for unordered nodes.

    Returns
    -------
    split : NodeSplit
        Copies of the rows; ``attack`` and ``attack_family`` are the node's.

    Raises
    ------
    DataError
        If the node has too few benign rows: fewer than 3 when a test set
        must be carved out, fewer than 2 otherwise.
    ValueError
        If a fraction is outside (0, 1) or the two sum to 1 or more.
    """
    carve_test = node.benign_test is None
    check_fraction("val_fraction", val_fraction)
    if carve_test:
        check_fraction("test_fraction", test_fraction)
        if val_fraction + test_fraction >= 1.0:
            raise ConfigError(
                f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction!r}"
            )
    n = len(node.benign)
    needed = 3 if carve_test else 2
    if n < needed:
        parts = "train, validation and test" if carve_test else "train and validation"
        raise DataError(
            f"node {node.name!r} has {n} benign rows, at least {needed} are needed "
            f"for one row each of {parts}"
        )
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction)) if carve_test else 0
    # Rounding up both parts can leave nothing to train on with few rows.
    while n - n_val - n_test < 1:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    n_train = n - n_val - n_test

    if node.ordered:
        order = np.arange(n)
    else:
        order = np.random.default_rng(seed).permutation(n)
    cuts = np.split(order, [n_train, n_train + n_val])
    train, val, test = (node.benign[np.sort(idx)] for idx in cuts)  # fancy index: copies
    if not carve_test:
        test = np.array(node.benign_test, dtype=node.benign.dtype)  # a copy, in the node's dtype
    return NodeSplit(node.name, train, val, test, node.attack, node.attack_family, node.columns, node.dropped_columns)
