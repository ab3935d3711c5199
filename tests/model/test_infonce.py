"""Tests for InfoNCELoss against a slow loop written from the formula."""

import math

import pytest
import torch

from fedcl.model import InfoNCELoss


def slow_infonce(view_a, view_b, temperature):
    """For each i: -log exp(cos(a_i, b_i)/τ) / Σ_j exp(cos(a_i, b_j)/τ), averaged over a->b and b->a."""
    a, b = view_a.double().tolist(), view_b.double().tolist()

    def cos(u, v):
        dot = sum(x * y for x, y in zip(u, v))
        return dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v)))

    def one_direction(p, q):
        total = 0.0
        for i in range(len(p)):
            numerator = math.exp(cos(p[i], q[i]) / temperature)
            denominator = sum(math.exp(cos(p[i], q[j]) / temperature) for j in range(len(q)))
            total += -math.log(numerator / denominator)
        return total / len(p)

    return 0.5 * (one_direction(a, b) + one_direction(b, a))


@pytest.mark.parametrize("batch", [2, 5, 16])
@pytest.mark.parametrize("dim", [1, 3, 32])
@pytest.mark.parametrize("temperature", [0.05, 0.5, 2.0])
def test_matches_slow_reference(batch, dim, temperature):
    gen = torch.Generator().manual_seed(batch * 100 + dim)
    a = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    b = torch.randn(batch, dim, generator=gen, dtype=torch.float64)

    loss = InfoNCELoss(temperature)(a, b)

    assert loss.shape == ()
    assert loss.item() == pytest.approx(slow_infonce(a, b, temperature), rel=1e-9, abs=1e-9)


def test_symmetric_in_its_two_views():
    # Averaging a->b and b->a makes swapping the views a no-op.
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 4, generator=gen, dtype=torch.float64)

    loss_ab = InfoNCELoss(0.3)(a, b)
    loss_ba = InfoNCELoss(0.3)(b, a)

    assert loss_ab.item() == pytest.approx(loss_ba.item(), rel=1e-12)
    assert loss_ab.item() == pytest.approx(slow_infonce(a, b, 0.3), rel=1e-9)


@pytest.mark.parametrize("temperature", [0.0, -0.1, -1.0, float("nan")])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature)


def test_aligned_views_have_lower_loss_than_random_views():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(32, 8, generator=gen)
    aligned_b = a + 0.01 * torch.randn(32, 8, generator=gen)
    random_b = torch.randn(32, 8, generator=gen)
    loss = InfoNCELoss(0.1)

    aligned, unrelated = loss(a, aligned_b), loss(a, random_b)

    assert aligned.item() < unrelated.item()
    assert aligned.item() < 0.5  # near-identical views: positives dominate the softmax
    assert unrelated.item() > math.log(32) - 1.5  # random views: close to chance level log(batch)


def test_scale_invariant():
    # Cosine similarity: rescaling either view row-wise must not change the loss.
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    scale = torch.rand(7, 1, generator=gen, dtype=torch.float64) * 10 + 0.1

    assert InfoNCELoss(0.2)(a * scale, b).item() == pytest.approx(InfoNCELoss(0.2)(a, b).item(), rel=1e-10)


def test_gradient_flows_to_both_views():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(8, 4, generator=gen, requires_grad=True)
    b = torch.randn(8, 4, generator=gen, requires_grad=True)

    InfoNCELoss(0.1)(a, b).backward()

    for view in (a, b):
        assert view.grad is not None
        assert torch.isfinite(view.grad).all()
        assert view.grad.abs().sum() > 0
