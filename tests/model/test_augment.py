"""Tests for augment."""

import pytest
import torch

from fedcl.model import augment


def rows(n=64, d=115, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + 3.0


def same(a, b):
    """Equal values and equal missing cells (NaN != NaN for torch.equal)."""
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def test_same_seed_same_views():
    x = rows()

    a = augment(x, 0.3, 0.1, torch.Generator().manual_seed(7))
    b = augment(x, 0.3, 0.1, torch.Generator().manual_seed(7))
    c = augment(x, 0.3, 0.1, torch.Generator().manual_seed(8))

    assert same(a, b)
    assert not same(a, c)


def test_two_calls_on_one_generator_differ():
    x = rows()
    gen = torch.Generator().manual_seed(0)

    a, b = augment(x, 0.3, 0.1, gen), augment(x, 0.3, 0.1, gen)

    assert not same(a, b)


def test_no_mask_no_noise_is_identity():
    x = rows()

    out = augment(x, 0.0, 0.0, torch.Generator().manual_seed(0))

    assert out.shape == x.shape
    assert torch.equal(out, x)


def test_input_is_not_modified():
    x = rows()
    before = x.clone()

    augment(x, 0.5, 0.5, torch.Generator().manual_seed(0))

    assert torch.equal(x, before)


@pytest.mark.parametrize("mask_prob", [0.1, 0.5, 0.9])
def test_masked_fraction_close_to_mask_prob(mask_prob):
    x = torch.ones(400, 250)  # 100k cells, none missing before masking

    out = augment(x, mask_prob, 0.0, torch.Generator().manual_seed(1))

    masked = out.isnan().float().mean().item()
    assert masked == pytest.approx(mask_prob, abs=0.01)  # hidden cells are missing (NaN), not 0
    assert torch.all(out.isnan() | (out == 1))  # no noise: kept cells unchanged


def test_a_missing_cell_stays_missing():
    x = rows()
    x[:, :10] = float("nan")

    out = augment(x, 0.2, 0.1, torch.Generator().manual_seed(3))

    assert out[:, :10].isnan().all()


def test_noise_std_without_mask():
    x = torch.zeros(400, 250)

    out = augment(x, 0.0, 0.2, torch.Generator().manual_seed(2))

    assert out.mean().item() == pytest.approx(0.0, abs=0.005)
    assert out.std().item() == pytest.approx(0.2, rel=0.02)
