"""AutoencoderDetector: the paper's architecture, early stopping, seeding and the from-weights path."""

import numpy as np
import pytest
import torch
from torch import nn

from fedcl.baselines import AutoencoderDetector
from fedcl.federated.params import get_arrays


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def benign():
    return np.random.default_rng(0).lognormal(size=(300, 115))


def test_architecture_is_the_papers_symmetric_mlp(benign):
    # Execute
    det = AutoencoderDetector(epochs=1).fit(benign)

    # Assert: 115 → 86 → 58 → 38 → 29 → 38 → 58 → 86 → 115, tanh between layers, linear output
    linears = [m for m in det.model_ if isinstance(m, nn.Linear)]
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    assert widths == [115, 86, 58, 38, 29, 38, 58, 86, 115]
    assert sum(isinstance(m, nn.Tanh) for m in det.model_) == 7
    assert isinstance(det.model_[-1], nn.Linear)


def test_relu_variant(benign):
    det = AutoencoderDetector(activation="relu", epochs=1).fit(benign)
    assert sum(isinstance(m, nn.ReLU) for m in det.model_) == 7


def test_early_stopping_keeps_the_best_validation_weights(benign):
    # Execute: a large learning rate makes the validation loss stall quickly
    det = AutoencoderDetector(epochs=300, lr=1e-2, patience=2).fit(benign[:200], X_val=benign[200:])

    # Assert
    assert det.n_epochs_ < 300
    assert len(det.val_loss_curve_) == det.n_epochs_ == len(det.loss_curve_)
    assert det.decision_function(benign[200:]).mean() == pytest.approx(min(det.val_loss_curve_), rel=1e-5)


def test_training_learns_low_rank_rows():
    # Prepare: 115 columns driven by 5 latent factors, which the 29-unit bottleneck can carry
    rng = np.random.default_rng(0)
    rows = np.exp(rng.normal(size=(300, 5)) @ rng.normal(size=(5, 115)) / 2)

    # Execute
    det = AutoencoderDetector(epochs=30, batch_size=32).fit(rows)

    # Assert
    assert det.loss_curve_[-1] < 0.2 * det.loss_curve_[0]


def test_fit_leaves_the_global_torch_rng_alone(benign):
    # Prepare
    before = torch.get_rng_state()

    # Execute
    AutoencoderDetector(epochs=2).fit(benign)

    # Assert
    assert torch.equal(torch.get_rng_state(), before)


def test_other_seed_other_model(benign):
    a = AutoencoderDetector(epochs=2, random_state=0).fit(benign)
    b = AutoencoderDetector(epochs=2, random_state=1).fit(benign)
    assert not np.array_equal(a.decision_scores_, b.decision_scores_)


def test_from_arrays_reproduces_a_trained_detector(benign):
    # Prepare
    trained = AutoencoderDetector(epochs=5).fit(benign[:200], X_val=benign[200:])

    # Execute
    rebuilt = AutoencoderDetector()._fit_from_arrays(get_arrays(trained.model_), benign[:200], benign[200:])

    # Assert
    np.testing.assert_array_equal(rebuilt.decision_function(benign), trained.decision_function(benign))
    assert rebuilt.threshold_ == trained.threshold_
    assert rebuilt.n_epochs_ == 0


@pytest.mark.parametrize("params", [{"activation": "gelu"}, {"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}])
def test_bad_parameters_raise(params, benign):
    with pytest.raises(ValueError):
        AutoencoderDetector(**params).fit(benign)
