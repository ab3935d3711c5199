"""Tests for squared_distance and ConsistencyLoss."""

import pytest
import torch

from fedcl.model import ConsistencyLoss, squared_distance


@pytest.mark.parametrize("batch, dim", [(1, 1), (4, 3), (10, 32)])
def test_squared_distance_matches_formula(batch, dim):
    gen = torch.Generator().manual_seed(batch + dim)
    z = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    g = torch.randn(dim, generator=gen, dtype=torch.float64)

    d = squared_distance(z, g)

    expected = ((z - g) ** 2).sum(dim=1) / dim
    assert d.shape == (batch,)
    torch.testing.assert_close(d, expected)


def test_squared_distance_by_hand():
    z = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    g = torch.tensor([1.0, 0.0])

    d = squared_distance(z, g)

    # row 0: (0² + 2²)/2 = 2; row 1: (1² + 0²)/2 = 0.5
    torch.testing.assert_close(d, torch.tensor([2.0, 0.5]))


def test_consistency_loss_is_batch_mean_of_distance():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    g = torch.randn(5, generator=gen, dtype=torch.float64)

    loss = ConsistencyLoss()(z, g)

    assert loss.shape == ()
    assert loss.item() == pytest.approx((((z - g) ** 2).sum(dim=1) / 5).mean().item(), rel=1e-12)


def test_zero_when_embeddings_equal_reference():
    g = torch.tensor([0.5, -1.0, 2.0])
    z = g.repeat(4, 1)

    assert torch.all(squared_distance(z, g) == 0)
    assert ConsistencyLoss()(z, g).item() == 0.0


def test_gradient_pulls_toward_reference():
    z = torch.tensor([[2.0, -2.0]], requires_grad=True)
    g = torch.tensor([0.0, 0.0])

    ConsistencyLoss()(z, g).backward()

    # d/dz mean((z - g)²) = 2 (z - g) / dim
    torch.testing.assert_close(z.grad, torch.tensor([[2.0, -2.0]]))
