"""Fit the supervised baselines per node or pooled, and score them on the held-out rows."""

from __future__ import annotations

import pandas as pd
from sklearn.base import clone

from fedcl.data import NodeSplit

from ._split import LabelledData, labelled_split

__all__ = ["fit_supervised", "evaluate_supervised"]


def fit_supervised(estimator, labelled: LabelledData, pooled: bool = False) -> dict:
    """Fit a clone of ``estimator`` per node, or one on all nodes' labelled rows.

    Per node (the default) each node trains on its own rows only, like fedcl's local and
    federated detectors: no raw row leaves its node, and each model is scaled on its node's benign
    rows. ``pooled=True`` is the centralised setting of the paper's supervised rows: one model on
    every node's labelled rows, scaled on all nodes' benign training rows, used by every node.

    Parameters
    ----------
    estimator : supervised classifier
        Unfitted template (e.g. ``MLPClassifier()``); it is cloned, not changed.
    labelled : LabelledData
        From :func:`labelled_split`.
    pooled : bool, default=False

    Returns
    -------
    models : dict of str to fitted classifier
        One entry per node (the same object for every node when pooled).

    Raises
    ------
    ValueError
        Per node, if a node has no labelled attack rows.
    """
    if pooled:
        rows = labelled.pooled()
        model = clone(estimator).fit(rows.X_train, rows.y_train, rows.X_val, rows.y_val)
        return {node.name: model for node in labelled}
    models = {}
    for node in labelled:
        if not node.y_train.any():
            raise ValueError(f"node {node.name!r} has no labelled attack rows; train with pooled=True")
        models[node.name] = clone(estimator).fit(node.X_train, node.y_train, node.X_val, node.y_val)
    return models


def evaluate_supervised(estimator, splits: list[NodeSplit], attack_fraction: float = 0.3,
                        val_attack_fraction: float = 0.1, pooled: bool = False, seed: int = 0) -> pd.DataFrame:
    """Labelled split, fit, and score every node's held-out rows, in the frame of the fedcl harness.

    Parameters
    ----------
    estimator : supervised classifier
        Unfitted template.
    splits : list of NodeSplit
        Guarded splits from :func:`fedcl.pipeline.load_splits`.
    attack_fraction, val_attack_fraction, seed
        As in :func:`labelled_split`.
    pooled : bool, default=False
        As in :func:`fit_supervised`.

    Returns
    -------
    scores : pandas.DataFrame
        One row per held-out row (the node's ``test_benign`` and its attack rows left after the
        labelled split), with the columns of :func:`fedcl.pipeline.score_nodes` (node, label,
        family, score, prediction) and ``supervised`` = True, so
        :func:`fedcl.pipeline.summarise` gives its metrics.
    """
    from fedcl.pipeline import score_nodes  # lazy: the pipeline may come to import the baselines

    labelled, test_splits = labelled_split(splits, attack_fraction, val_attack_fraction, seed)
    scores = score_nodes(fit_supervised(estimator, labelled, pooled), test_splits)
    scores["supervised"] = True
    return scores
