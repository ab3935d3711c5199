"""train_federated_autoencoder: FedAvg maths, per-node scalers and thresholds, determinism."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedcl.baselines import AutoencoderDetector, train_federated_autoencoder
from fedcl.data import NodeScaler
from fedcl.federated.params import get_arrays


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nodes():
    """Two nodes with different scales and sizes (benign train, benign val), plus shifted attacks."""
    rng = np.random.default_rng(0)
    a = rng.lognormal(mean=0.0, size=(260, 115))
    b = rng.lognormal(mean=3.0, sigma=0.5, size=(140, 115))
    return {
        "train": {"a": a[:200], "b": b[:100]},
        "val": {"a": a[200:], "b": b[100:]},
        "attack": {"a": rng.lognormal(mean=2.0, size=(60, 115)), "b": rng.lognormal(mean=5.0, sigma=0.5, size=(60, 115))},
    }


def _weights(det: AutoencoderDetector) -> list[np.ndarray]:
    return get_arrays(det.model_)


def test_same_seed_same_weights_other_seed_other_weights(nodes):
    # Execute
    first = train_federated_autoencoder(nodes["train"], rounds=2, seed=0)
    again = train_federated_autoencoder(nodes["train"], rounds=2, seed=0)
    other = train_federated_autoencoder(nodes["train"], rounds=2, seed=1)

    # Assert
    for x, y in zip(_weights(first["a"]), _weights(again["a"])):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(_weights(first["a"]), _weights(other["a"])))


def test_every_node_gets_the_global_weights_with_its_own_scaler_and_threshold(nodes):
    # Execute
    dets = train_federated_autoencoder(nodes["train"], nodes["val"], rounds=2, fpr_target=0.05)

    # Assert
    assert list(dets) == ["a", "b"]
    for x, y in zip(_weights(dets["a"]), _weights(dets["b"])):
        np.testing.assert_array_equal(x, y)
    for name, det in dets.items():
        np.testing.assert_array_equal(det.scaler_.mean_, NodeScaler().fit(nodes["train"][name]).mean_)
        assert det.threshold_ == pytest.approx(np.quantile(det.decision_function(nodes["val"][name]), 0.95))
    assert not np.allclose(dets["a"].scaler_.mean_, dets["b"].scaler_.mean_)


def test_a_node_without_validation_rows_uses_its_training_scores(nodes):
    dets = train_federated_autoencoder(nodes["train"], {"a": nodes["val"]["a"]}, rounds=1)
    assert dets["b"].threshold_ == pytest.approx(np.quantile(dets["b"].decision_scores_, 0.99))


def test_one_round_is_the_sample_weighted_mean_of_the_local_models(nodes):
    # Prepare: alone, a node's federation is plain local training, so it yields θ_i (same init, same
    # batch order: both depend on the seed and the node's name only)
    theta_a = _weights(train_federated_autoencoder({"a": nodes["train"]["a"]}, rounds=1)["a"])
    theta_b = _weights(train_federated_autoencoder({"b": nodes["train"]["b"]}, rounds=1)["b"])

    # Execute
    together = _weights(train_federated_autoencoder(nodes["train"], rounds=1)["a"])

    # Assert: θ = (200 θ_a + 100 θ_b) / 300
    for got, ta, tb in zip(together, theta_a, theta_b):
        np.testing.assert_allclose(got, (2 * ta + tb) / 3, atol=1e-6)


def test_detects_shifted_attacks_on_every_node(nodes):
    # Execute
    dets = train_federated_autoencoder(nodes["train"], nodes["val"], rounds=10, batch_size=32)

    # Assert
    for name, det in dets.items():
        scores = det.decision_function(np.vstack([nodes["val"][name], nodes["attack"][name]]))
        labels = np.r_[np.zeros(len(nodes["val"][name])), np.ones(60)]
        assert roc_auc_score(labels, scores) > 0.9


@pytest.mark.parametrize("kwargs", [{"rounds": 0}, {"local_epochs": 0}, {"node_val": {"c": np.ones((3, 115))}}])
def test_bad_arguments_raise(kwargs, nodes):
    with pytest.raises(ValueError):
        train_federated_autoencoder(nodes["train"], **kwargs)


def test_nodes_must_share_their_columns():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="columns"):
        train_federated_autoencoder({"a": rng.random((20, 115)), "b": rng.random((20, 100))}, rounds=1)
