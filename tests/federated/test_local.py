"""Tests for local_train: one node's share of a round."""

import dataclasses

import numpy as np
import pytest
import torch

from fedcl.config import FedCLConfig
from fedcl.federated import LocalUpdate, local_train
from fedcl.federated.params import get_arrays
from fedcl.model import build_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIM = 4
CONFIG = FedCLConfig(local_epochs=2, min_rows_per_round=0, batch_size=16, embedding_dim=DIM, hidden=16, lr=1e-2)


def rows(n=64, seed=0):
    return torch.randn(n, 115, generator=torch.Generator().manual_seed(seed))


def run(config=CONFIG, x=None, reference=np.zeros(DIM), seed=0):  # noqa: B008 (read-only default)
    torch.manual_seed(seed)
    encoder = build_encoder("mlp", 115, config.hidden, config.embedding_dim)
    arrays = get_arrays(encoder)
    x = rows() if x is None else x
    update = local_train(encoder, arrays, x, reference, config, torch.Generator().manual_seed(seed))
    return update, arrays, encoder


def test_update_shapes_and_statistics():
    x = rows(50)

    update, arrays, encoder = run(x=x)

    assert isinstance(update, LocalUpdate)
    assert [d.shape for d in update.delta] == [a.shape for a in arrays]
    assert [d.dtype for d in update.delta] == [a.dtype for a in arrays]
    assert update.n_samples == 50
    assert update.mean_embedding.shape == (DIM,) and update.mean_embedding.dtype == np.float64
    assert np.isfinite(update.distance) and update.distance >= 0
    assert np.isfinite(update.loss) and update.loss > 0
    assert any(np.abs(d).max() > 0 for d in update.delta)  # training moved θ


def test_delta_is_trained_minus_global():
    update, arrays, encoder = run()

    trained = get_arrays(encoder)

    for new, old, delta in zip(trained, arrays, update.delta):
        np.testing.assert_allclose(old + delta, new, rtol=0, atol=1e-6)


def test_encoder_is_loaded_with_global_arrays_first():
    torch.manual_seed(0)
    encoder = build_encoder("mlp", 115, 16, DIM)
    global_arrays = get_arrays(encoder)
    torch.manual_seed(1)
    other = build_encoder("mlp", 115, 16, DIM)  # a different starting θ on the node

    update = local_train(other, global_arrays, rows(), np.zeros(DIM), CONFIG, torch.Generator().manual_seed(0))
    reference, _, _ = run(seed=0)

    for a, b in zip(update.delta, reference.delta):
        np.testing.assert_array_equal(a, b)


def test_same_seed_is_deterministic():
    a, _, _ = run(seed=3)
    b, _, _ = run(seed=3)
    c, _, _ = run(seed=4)

    for da, db in zip(a.delta, b.delta):
        np.testing.assert_array_equal(da, db)
    np.testing.assert_array_equal(a.mean_embedding, b.mean_embedding)
    assert (a.distance, a.loss, a.n_samples) == (b.distance, b.loss, b.n_samples)
    assert a.distance != c.distance


def test_distance_grows_with_the_gap_between_node_mean_and_reference():
    # With exact window statistics, d = 1 + ‖(μ_i − g)/σ_i‖²/dim: 1 when g = μ_i, more the farther g is.
    x = rows(60, seed=4)
    at_mean, _, _ = run(x=x, reference=None)
    near, _, _ = run(x=x, reference=at_mean.mean_embedding + 0.1)
    far, _, _ = run(x=x, reference=at_mean.mean_embedding + 10.0)

    assert at_mean.distance == pytest.approx(1.0, abs=1e-4)  # no reference yet: g_node = 0 = own mean
    assert 1.0 < near.distance < far.distance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_consistency_weight_pulls_embeddings_toward_reference(seed):
    x = rows(96, seed=seed)
    g = np.random.default_rng(seed).normal(size=DIM)
    config = dataclasses.replace(CONFIG, local_epochs=4)

    free, _, _ = run(dataclasses.replace(config, consistency_weight=0.0), x=x, reference=g, seed=seed)
    pulled, _, _ = run(dataclasses.replace(config, consistency_weight=2.0), x=x, reference=g, seed=seed)

    # d − 1 = ‖(μ_i − g)/σ_i‖²/dim, the part of d the pull can shrink (the spread part is 1)
    assert pulled.distance - 1 < 0.5 * (free.distance - 1)



def optimiser_steps(monkeypatch, config) -> int:
    """How many Adam steps one round of ``run(config)`` takes."""
    steps = []
    original = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: steps.append(1) or original(self, *a, **k))
    run(config)
    return len(steps)


@pytest.mark.parametrize("bound, expected", [(0, 8), (3, 3), (100, 8)])
def test_local_steps_bound_the_optimiser_steps_of_a_round(monkeypatch, bound, expected):
    # 64 rows in batches of 16 over 2 epochs are 8 steps unbounded
    assert optimiser_steps(monkeypatch, dataclasses.replace(CONFIG, local_steps=bound)) == expected


@pytest.mark.parametrize("min_rows, expected", [(0, 8), (64, 8), (256, 16), (300, 20)])
def test_a_small_node_runs_more_epochs_to_pass_over_min_rows_per_round(monkeypatch, min_rows, expected):
    # 64 rows in batches of 16 are 4 steps an epoch; ⌈min_rows / 64⌉ epochs when that is more than local_epochs 2
    assert optimiser_steps(monkeypatch, dataclasses.replace(CONFIG, min_rows_per_round=min_rows)) == expected


def test_a_step_bound_reached_at_an_epochs_end_keeps_the_losses_of_the_epochs_that_ran(monkeypatch):
    # 64 rows with min_rows_per_round 256 are 4 epochs of 4 steps; the bound of 8 ends the second epoch
    config = dataclasses.replace(CONFIG, min_rows_per_round=256, local_steps=8)

    assert optimiser_steps(monkeypatch, config) == 8
    update, _, _ = run(config)
    assert np.isfinite(update.loss) and np.isfinite(update.contrastive)


def test_rows_in_an_island_sit_the_round_out():
    # Prepare: 200 rows and, after them, 8 near-copies of one far row (a flood in the training window)
    benign = rows(200)
    planted = 8 + 0.01 * torch.randn(8, 115, generator=torch.Generator().manual_seed(1))
    x = torch.cat([benign, planted])

    # Execute
    trimmed, _, _ = run(dataclasses.replace(CONFIG, trim_fraction=0.1), x=x)
    alone, _, _ = run(x=benign)
    kept, _, _ = run(x=x)

    # Assert: trimmed, the round is the one on the 200 rows alone
    assert trimmed.n_samples == alone.n_samples == 200 and kept.n_samples == 208
    for a, b in zip(trimmed.delta, alone.delta):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(trimmed.mean_embedding, alone.mean_embedding)
