"""Record-level differential privacy (fedcl.privacy.dp): the decoupled per-row loss, the accounting and
the statistics release."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.model import InfoNCELoss, MLPEncoder
from fedcl.privacy import dp

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:Full backward hook is firing")]


def per_row_grads(encoder: MLPEncoder, rows: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """The per-row gradients local training hands to Opacus' optimiser, flattened: (rows, n_params)."""
    gen = torch.Generator().manual_seed(seed)
    model = GradSampleModule(encoder, loss_reduction="sum")
    views = dp.row_views(rows, (rows + 0.1 * torch.randn(rows.shape, generator=gen),
                                rows + 0.1 * torch.randn(rows.shape, generator=gen)), gen, n_negatives=3)
    dp.RowContrastiveLoss(0.2)(model(views)).sum().backward()  # views: (rows, V, features), as local training
    grads = torch.cat([p.grad_sample.reshape(len(rows), -1) for p in model.parameters()], dim=1)
    model._close()
    return grads


def encoder() -> MLPEncoder:
    torch.manual_seed(0)
    return MLPEncoder(n_features=6, hidden=8, dim=4)


def test_changing_one_row_changes_only_that_rows_gradient():
    # Prepare: two batches equal but for row 2 (same augmentations and negatives' permutations)
    rows = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    changed = rows.clone()
    changed[2] = torch.randn(6, generator=torch.Generator().manual_seed(2)) * 3

    # Execute
    before, after = per_row_grads(encoder(), rows, seed=7), per_row_grads(encoder(), changed, seed=7)

    # Assert: the others' per-row gradients are bit for bit the same, row 2's is not
    others = [0, 1, 3, 4]
    torch.testing.assert_close(after[others], before[others], rtol=0, atol=0)
    assert (after[2] - before[2]).abs().max() > 1e-4


def test_per_row_gradient_is_the_gradient_of_that_rows_loss_alone():
    # Prepare: the slow reference: each row in a batch of its own, plain autograd
    rows = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    batched = per_row_grads(encoder(), rows, seed=11)

    # Execute: the same views for row j, computed with row j alone
    gen = torch.Generator().manual_seed(11)
    a, b = rows + 0.1 * torch.randn(rows.shape, generator=gen), rows + 0.1 * torch.randn(rows.shape, generator=gen)
    perms = torch.stack([torch.randperm(6, generator=gen) for _ in range(3)])
    reference = []
    for j in range(len(rows)):
        enc = encoder()
        views = torch.cat([a[j][None], b[j][None], rows[j][perms]])  # (2 + 3, features)
        dp.RowContrastiveLoss(0.2)(enc(views)[None]).sum().backward()
        reference.append(torch.cat([p.grad.reshape(-1) for p in enc.parameters()]))

    # Assert
    torch.testing.assert_close(batched, torch.stack(reference), rtol=1e-4, atol=1e-6)


def test_the_batch_infonce_couples_rows_which_is_why_dp_does_not_use_it():
    # Prepare: Opacus' per-sample gradients of the batch InfoNCE (each row another's negative)
    def grads(rows):
        model = GradSampleModule(encoder(), loss_reduction="sum")
        InfoNCELoss(0.2)(model(rows), model(rows + 0.1)).backward()
        out = torch.cat([p.grad_sample.reshape(2 * len(rows), -1) for p in model.parameters()], dim=1)
        model._close()
        return out

    rows = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    changed = rows.clone()
    changed[2] += 3

    # Execute
    before, after = grads(rows), grads(changed)

    # Assert: row 0's "per-sample" gradient moves with row 2: clipping it would not bound row 2
    assert (after[0] - before[0]).abs().max() > 1e-4


@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_calibrated_noise_spends_at_most_the_target_and_close_to_it(epsilon):
    # Prepare
    config = FedCLConfig(dp_epsilon=epsilon, rounds=5, batch_size=64, local_epochs=1)

    # Execute
    plan = dp.plan(config, n_rows=1000)
    accountant = RDPAccountant()  # Opacus' own, independently of fedcl's wrapper
    for sigma, q, steps in plan.history():
        for _ in range(steps):
            accountant.step(noise_multiplier=sigma, sample_rate=q)
    spent = accountant.get_epsilon(config.dp_delta, alphas=dp._ALPHAS)

    # Assert
    assert plan.sample_rate == pytest.approx(0.064) and plan.steps_per_round == 16
    assert spent == pytest.approx(plan.epsilon(), rel=1e-9)
    assert 0.97 * epsilon <= spent <= epsilon
    assert plan.epsilon(rounds_done=2) < spent  # a run cut short spent less


def test_less_epsilon_means_more_noise_and_more_rounds_mean_more_noise():
    config = FedCLConfig(dp_epsilon=3.0, rounds=4, batch_size=32)

    base = dp.plan(config, 500)
    tighter = dp.plan(dataclasses.replace(config, dp_epsilon=1.0), 500)
    longer = dp.plan(dataclasses.replace(config, rounds=8), 500)

    assert tighter.noise_multiplier > base.noise_multiplier and longer.noise_multiplier > base.noise_multiplier
    assert tighter.stats_noise_multiplier > base.stats_noise_multiplier


def test_statistics_release_is_the_clipped_mean_plus_gaussian_noise_of_the_stated_scale():
    # Prepare: rows of norm up to 4, clipped to 1
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(400, 3, generator=gen) * torch.tensor([1.0, 2.0, 0.5])
    clipped = z * torch.clamp(1.0 / z.norm(dim=1, keepdim=True), max=1.0)

    # Execute
    exact_mean, _, exact_count = dp.private_statistics(z, 1.0, 0.0, gen)
    means = torch.stack([dp.private_statistics(z, 1.0, 10.0, gen)[0] for _ in range(300)])

    # Assert: no noise: the clipped mean and the true count; noise: std σ_s·√3·C/n per coordinate
    torch.testing.assert_close(exact_mean, clipped.mean(dim=0), rtol=1e-5, atol=1e-6)
    assert exact_count == 400
    expected = 10.0 * math.sqrt(3.0) / 400
    assert means.std(dim=0) == pytest.approx(torch.full((3,), expected), rel=0.2)


def test_one_row_moves_the_released_sum_by_at_most_the_sensitivity():
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(1)) * 5
    with_row, _, n1 = dp.private_statistics(z, 2.0, 0.0, torch.Generator())
    without, _, n2 = dp.private_statistics(z[1:], 2.0, 0.0, torch.Generator())

    # the sums differ by one clipped row: norm ≤ C (the mean part of the √3·C bound)
    assert (with_row * n1 - without * n2).norm() <= 2.0 + 1e-5
    assert n1 - n2 == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"dp_epsilon": 0.0}, "dp_epsilon must be positive"),
    ({"dp_epsilon": -1.0}, "dp_epsilon must be positive"),
    ({"dp_epsilon": 1.0, "dp_delta": 0.0}, "dp_delta must be in"),
    ({"dp_epsilon": 1.0, "dp_delta": 1.0}, "dp_delta must be in"),
    ({"dp_epsilon": 1.0, "trim_fraction": 0.1}, "trim_fraction must be 0"),
    ({"dp_epsilon": 1.0, "missing_mask": True}, "missing_mask is not supported"),
])
def test_bad_privacy_settings_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        FedCLConfig(**options)


@pytest.mark.parametrize("schema", ["nbaiot", "auto"])
def test_under_dp_each_rows_scaled_input_depends_on_that_row_alone(schema):
    # Prepare: a node's rows, and the same rows with one extreme row more
    from fedcl.data import training_scaler

    rows = np.random.default_rng(0).lognormal(2.0, 1.0, size=(300, 115))
    more = np.vstack([rows, np.full((1, 115), 1e9)])

    # Execute
    private = [training_scaler(private=True, schema=schema).fit_transform(x)[:300] for x in (rows, more)]
    fitted = [training_scaler(private=False).fit_transform(x)[:300] for x in (rows, more)]

    # Assert: the fixed scale leaves the other rows' inputs bit-identical; fitted statistics move them all
    np.testing.assert_array_equal(private[0], private[1])
    assert np.abs(fitted[0] - fitted[1]).max() > 0.1


def test_public_statistics_follow_each_nbaiot_columns_definition():
    from fedcl.data import public_statistics
    from fedcl.data._schema import COLUMNS

    centre, scale = public_statistics("nbaiot", 115)

    kind = {c: i for i, c in enumerate(COLUMNS)}
    pcc, size, jitter = kind["HH_L0.1_pcc"], kind["MI_dir_L5_mean"], kind["HH_jit_L1_mean"]
    assert centre[pcc] == 0 and scale[pcc] == pytest.approx(np.log(2) / 2)  # pcc in [-1, 1]
    assert centre[size] == pytest.approx((np.log1p(60) + np.log1p(1514)) / 2)  # frame sizes 60..1514 bytes
    assert scale[jitter] == pytest.approx(np.log1p(86_400) / 4)  # jitter up to a day
    assert centre[kind["HH_jit_L1_weight"]] == centre[kind["HH_L1_weight"]]  # a count, like any weight
    assert np.all(scale > 0)
    other = public_statistics("auto", 7)
    assert np.all(other[0] == 0) and np.all(other[1] == 5.0)
    with pytest.raises(ValueError, match="115 columns"):
        public_statistics("nbaiot", 7)


def test_under_dp_the_shared_view_scores_with_the_public_statistics_it_trained_with(fedmse_slice):
    from fedcl.data import public_statistics
    from fedcl.model import encoder_for
    from fedcl.pipeline import load_splits, make_detector

    config = FedCLConfig(data=str(fedmse_slice), dp_epsilon=4.0, personalisation="off", n_references=16)
    split = load_splits(config)[0]

    detector = make_detector(encoder_for(config, 115), config).fit(split.train[:200], X_val=split.val[:50])

    centre, scale = public_statistics("nbaiot", 115)
    np.testing.assert_array_equal(detector.scaler_.mean_, centre)
    np.testing.assert_array_equal(detector.scaler_.scale_, scale)
