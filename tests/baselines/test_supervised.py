"""Supervised baselines: labelled split, the classifier contract, and the (23, 5) layout."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from fedcl.baselines.supervised import (
    STATISTICS,
    WINDOW_INDEX,
    WINDOWS,
    CNN1DClassifier,
    GATClassifier,
    GNNClassifier,
    MLPClassifier,
    evaluate_supervised,
    fit_supervised,
    labelled_split,
    statistic_graph,
    to_windows,
)
from fedcl.data import COLUMNS, NodeSplit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Small and fast: a few epochs are plenty on the synthetic task.
CLASSIFIERS = [
    MLPClassifier(hidden=(32, 16), max_epochs=15, patience=3),
    CNN1DClassifier(channels=8, hidden=8, max_epochs=15, patience=3),
    GNNClassifier(width=8, embedding=4, hidden=8, max_epochs=15, patience=3),
    GATClassifier(heads=2, head_dim=4, embedding=4, hidden=8, max_epochs=15, patience=3),
]
IDS = [type(c).__name__ for c in CLASSIFIERS]


def _rows(rng, n, shift=0.0):
    return rng.lognormal(mean=shift, size=(n, len(COLUMNS)))


def _split(name, rng, families=("scan", "udp")):
    attack = _rows(rng, 60, shift=1.0)
    return NodeSplit(name, _rows(rng, 80), _rows(rng, 20), _rows(rng, 20), attack,
                     np.array([families[i % len(families)] for i in range(60)]))


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    benign, attack = _rows(rng, 300), _rows(rng, 150, shift=1.0)
    X = np.vstack([benign[:150], attack[:50]])
    y = np.r_[np.zeros(150, int), np.ones(50, int)]
    X_val = np.vstack([benign[150:200], attack[50:75]])
    y_val = np.r_[np.zeros(50, int), np.ones(25, int)]
    X_test = np.vstack([benign[200:], attack[75:]])
    y_test = np.r_[np.zeros(100, int), np.ones(75, int)]
    return X, y, X_val, y_val, X_test, y_test


def test_labelled_split_is_disjoint_stratified_and_deterministic():
    # Prepare
    rng = np.random.default_rng(1)
    splits = [_split("a", rng), _split("b", rng, families=("mirai",))]

    # Execute
    labelled, test_splits = labelled_split(splits, attack_fraction=0.3, val_attack_fraction=0.1, seed=0)
    again, _ = labelled_split(splits, attack_fraction=0.3, val_attack_fraction=0.1, seed=0)
    other, _ = labelled_split(splits, attack_fraction=0.3, val_attack_fraction=0.1, seed=1)

    # Assert
    for s, node, test in zip(splits, labelled, test_splits):
        train_rows, val_rows = set(node.train_attack_rows), set(node.val_attack_rows)
        held_out = set(range(len(s.attack))) - train_rows - val_rows
        assert not train_rows & val_rows
        assert len(train_rows) == 18 and len(val_rows) == 6  # 30 % and 10 % of 60
        # The returned test attacks are exactly the rows not labelled, in order (rows are unique here).
        np.testing.assert_array_equal(test.attack, s.attack[sorted(held_out)])
        np.testing.assert_array_equal(test.attack_family, s.attack_family[sorted(held_out)])
        assert not {r.tobytes() for r in test.attack} & {r.tobytes() for r in node.X_train}
        assert not {r.tobytes() for r in test.attack} & {r.tobytes() for r in node.X_val}
        # Benign rows: train and val join the labelled sets, test_benign is untouched.
        np.testing.assert_array_equal(node.X_train[node.y_train == 0], s.train)
        np.testing.assert_array_equal(node.X_val[node.y_val == 0], s.val)
        assert test.test_benign is s.test_benign
    # Stratified: 9 of each family of node "a" (30 rows each).
    families, counts = np.unique(splits[0].attack_family[labelled.nodes[0].train_attack_rows], return_counts=True)
    assert list(families) == ["scan", "udp"] and list(counts) == [9, 9]
    for n1, n2 in zip(labelled, again):
        np.testing.assert_array_equal(n1.train_attack_rows, n2.train_attack_rows)
        np.testing.assert_array_equal(n1.val_attack_rows, n2.val_attack_rows)
    assert any(not np.array_equal(n1.train_attack_rows, n3.train_attack_rows) for n1, n3 in zip(labelled, other))
    pooled = labelled.pooled()
    assert len(pooled.y_train) == sum(len(n.y_train) for n in labelled)


def test_labelled_split_rejects_fractions_that_leave_no_test_attacks():
    splits = [_split("a", np.random.default_rng(0))]
    with pytest.raises(ValueError):
        labelled_split(splits, attack_fraction=0.7, val_attack_fraction=0.3)
    with pytest.raises(ValueError):
        labelled_split(splits, attack_fraction=0.0)


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=IDS)
def test_classifier_contract_and_auroc_floor(clf, task):
    # Prepare
    X, y, X_val, y_val, X_test, y_test = task
    with pytest.raises(NotFittedError):
        clf.__class__().decision_function(X_test)

    # Execute
    fitted = clf.fit(X, y, X_val, y_val)
    scores = fitted.decision_function(X_test)
    again = type(clf)(**clf.get_params()).fit(X, y, X_val, y_val).decision_function(X_test)

    # Assert
    assert fitted is clf and fitted.threshold_ == 0.5
    assert scores.shape == (len(X_test),) and scores.dtype == np.float64
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    np.testing.assert_array_equal(fitted.predict(X_test), (scores > fitted.threshold_).astype(int))
    np.testing.assert_array_equal(scores, again)  # seeded
    assert roc_auc_score(y_test, scores) > 0.9
    assert 0 <= fitted.best_epoch_ < len(fitted.history_) <= clf.max_epochs


def test_classifier_validates_labels_and_params(task):
    X, y, *_ = task
    with pytest.raises(ValueError, match="both"):
        MLPClassifier().fit(X, np.zeros(len(X), int))
    with pytest.raises(ValueError):
        MLPClassifier().fit(X, np.full(len(X), 2))
    with pytest.raises(ValueError):
        MLPClassifier(threshold=1.5).fit(X, y)
    with pytest.raises(ValueError, match="columns"):
        CNN1DClassifier(max_epochs=1).fit(X[:, :20], y)


def test_seeding_leaves_the_global_torch_rng_alone(task):
    X, y, *_ = task
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MLPClassifier(hidden=(8,), max_epochs=1).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)


def test_window_grid_maps_each_statistic_and_window_to_its_column():
    # Prepare: a row whose value is its column index.
    row = np.arange(len(COLUMNS), dtype=np.float64)[None, :]

    # Execute
    grid = to_windows(row)[0]

    # Assert
    assert grid.shape == (23, 5) and WINDOWS == (5.0, 3.0, 1.0, 0.1, 0.01)
    lam = ["5", "3", "1", "0.1", "0.01"]
    for s, stat in enumerate(STATISTICS):
        stream, quantity = stat.rsplit("_", 1)
        for w in range(5):
            assert COLUMNS[int(grid[s, w])] == f"{stream}_L{lam[w]}_{quantity}"
    assert STATISTICS[:3] == ("MI_dir_weight", "MI_dir_mean", "MI_dir_variance")
    assert "HH_jit_mean" in STATISTICS and "HpHp_pcc" in STATISTICS
    assert sorted(WINDOW_INDEX.ravel()) == list(range(len(COLUMNS)))


def test_statistic_graph_links_streams_and_like_quantities():
    a = statistic_graph()
    idx = {s: i for i, s in enumerate(STATISTICS)}
    assert a.shape == (23, 23) and (a == a.T).all() and not a.diagonal().any()
    assert a[idx["HH_mean"], idx["HH_pcc"]]  # same stream
    assert a[idx["MI_dir_weight"], idx["HpHp_weight"]]  # counts across streams
    assert a[idx["H_variance"], idx["HpHp_std"]]  # size spread across streams
    assert not a[idx["HH_jit_mean"], idx["HH_mean"]]  # inter-arrival time vs packet size
    assert not a[idx["MI_dir_mean"], idx["HpHp_pcc"]]


def test_evaluate_supervised_scores_only_held_out_rows_per_node_and_pooled():
    # Prepare
    rng = np.random.default_rng(2)
    splits = [_split("a", rng), _split("b", rng)]
    clf = MLPClassifier(hidden=(16,), max_epochs=5)

    # Execute
    per_node = evaluate_supervised(clf, splits)
    models = fit_supervised(clf, labelled_split(splits)[0], pooled=True)
    pooled = evaluate_supervised(clf, splits, pooled=True)

    # Assert: 20 benign test rows and 60 - 18 - 6 attack rows per node.
    for scores in (per_node, pooled):
        assert scores["supervised"].all()
        assert scores.groupby("node")["label"].agg(["size", "sum"]).values.tolist() == [[56, 36], [56, 36]]
    assert models["a"] is models["b"]
    assert not hasattr(clf, "module_")  # the template is cloned, not fitted
