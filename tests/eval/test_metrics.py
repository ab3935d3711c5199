"""Tests for detection_metrics and fpr_at_tpr."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from fedcl.eval import METRIC_KEYS, detection_metrics, fpr_at_tpr


def random_set(seed, n=300, attack_rate=0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < attack_rate).astype(int)
    scores = rng.normal(size=n) + 1.5 * y
    y_pred = (scores > 0.8).astype(int)
    return y, scores, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed):
    y, scores, y_pred = random_set(seed)

    m = detection_metrics(y, scores, y_pred)

    assert m["auroc"] == pytest.approx(roc_auc_score(y, scores))
    assert m["auprc"] == pytest.approx(average_precision_score(y, scores))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, y_pred))
    assert m["precision"] == pytest.approx(precision_score(y, y_pred))
    assert m["recall"] == pytest.approx(recall_score(y, y_pred))
    assert m["f1"] == pytest.approx(f1_score(y, y_pred))
    assert m["fpr"] == pytest.approx(np.mean(y_pred[y == 0]))


def test_keys_are_exactly_metric_keys():
    y, scores, y_pred = random_set(0)

    m = detection_metrics(y, scores, y_pred)

    assert tuple(m) == METRIC_KEYS
    assert all(isinstance(v, float) for v in m.values())


def test_no_attack_rows_gives_none_where_undefined():
    y = np.zeros(6, dtype=int)
    scores = np.array([0.1, 0.5, 0.9, 0.2, 0.3, 0.4])
    y_pred = np.array([0, 0, 1, 0, 0, 1])

    m = detection_metrics(y, scores, y_pred)

    assert set(m) == set(METRIC_KEYS)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["fpr"] == pytest.approx(2 / 6)
    for key in ("auroc", "auprc", "recall", "precision", "f1", "balanced_accuracy", "fpr_at_tpr99"):
        assert m[key] is None, key


def test_no_benign_rows_gives_recall_but_no_fpr():
    y = np.ones(4, dtype=int)
    m = detection_metrics(y, np.array([0.1, 0.2, 0.3, 0.4]), np.array([1, 1, 0, 1]))

    assert m["recall"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["fpr"] is None and m["auroc"] is None and m["balanced_accuracy"] is None


def test_no_predicted_attacks_gives_zero_precision_and_f1():
    y = np.array([0, 1, 0, 1])

    m = detection_metrics(y, np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4, dtype=int))

    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["fpr"] == 0.0


def test_length_mismatch_or_empty_raises():
    with pytest.raises(ValueError):
        detection_metrics(np.array([0, 1]), np.array([0.1, 0.2, 0.3]), np.array([0, 1]))
    with pytest.raises(ValueError):
        detection_metrics(np.array([]), np.array([]), np.array([]))


def test_fpr_at_tpr_by_hand():
    # Scores high to low: A(0.9) A(0.8) B(0.7) A(0.6) B(0.5) B(0.4) A(0.3) B(0.2)
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])

    # threshold 0.8 catches 2/4 attacks with no false alarm; 0.6 catches 3/4 with 1/4 FPR;
    # 0.3 catches all with 3/4 FPR.
    assert fpr_at_tpr(y, scores, 0.5) == pytest.approx(0.0)
    assert fpr_at_tpr(y, scores, 0.75) == pytest.approx(0.25)
    assert fpr_at_tpr(y, scores, 0.99) == pytest.approx(0.75)
    assert fpr_at_tpr(y, scores, 1.0) == pytest.approx(0.75)
    # several targets at once: the curve sampled at each, as one call per target gives
    np.testing.assert_allclose(fpr_at_tpr(y, scores, np.array([0.5, 0.75, 0.99])), [0.0, 0.25, 0.75])


def test_fpr_at_tpr_perfect_separation_is_zero():
    y = np.array([0, 0, 0, 1, 1])

    assert fpr_at_tpr(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == 0.0
    assert fpr_at_tpr(y, np.array([0.8, 0.9, 0.7, 0.1, 0.2])) == 1.0  # reversed scores


def test_fpr_at_tpr99_in_metrics_uses_99_percent():
    y = np.array([1] * 100 + [0] * 100)
    # 99 attacks rank above every benign row; one attack ranks below 10 of the 100 benign rows.
    scores = np.r_[np.linspace(2, 3, 99), [0.905], np.linspace(0, 1, 100)]

    m = detection_metrics(y, scores, (scores > 1.5).astype(int))

    assert m["fpr_at_tpr99"] == pytest.approx(0.0)
    assert fpr_at_tpr(y, scores, 1.0) == pytest.approx(0.1)


def test_fpr_at_tpr_keeps_collinear_thresholds():
    # The threshold at 2 catches 2/3 of attacks at FPR 2/3; roc_curve's default would drop it.
    assert fpr_at_tpr(np.array([1, 0, 1, 0, 1, 0]), np.array([3, 3, 2, 2, 1, 1]), 0.6) == pytest.approx(2 / 3)


def test_training_plot_draws_nodes_that_missed_rounds(tmp_path):
    from fedcl.eval.plots import plot_history

    node = {"loss": 1.0, "weight": 0.5}
    history = [{"round": 1, "loss": 2.0, "contrastive": 1.9, "nodes": {"a": node, "b": node}},
               {"round": 2, "loss": 1.5, "contrastive": 1.4, "nodes": {"a": {**node, "weight": 1.0}}},  # b dropped out
               {"round": 3, "loss": 1.2, "contrastive": 1.1, "nodes": {"a": node, "c": node}}]  # c joined

    plot_history(history, tmp_path / "t.png")

    assert (tmp_path / "t.png").stat().st_size > 10_000
