"""Tests for EmbeddingNormaliser."""

import pytest
import torch

from fedcl.model import EmbeddingNormaliser


def sample(n=200, dim=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5, 10.0],
                                                                                  dtype=torch.float64)[:dim] + 5.0


def test_fit_standardises_the_fitted_data():
    z = sample()

    normaliser = EmbeddingNormaliser(4).fit(z)
    z_norm = normaliser(z)

    torch.testing.assert_close(z_norm.mean(dim=0), torch.zeros(4, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(z_norm.std(dim=0, correction=0), torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(normaliser.mean, z.mean(dim=0))


def test_fit_returns_self():
    normaliser = EmbeddingNormaliser(4)

    assert normaliser.fit(sample()) is normaliser


def test_statistics_are_detached():
    z = sample().requires_grad_(True)
    normaliser = EmbeddingNormaliser(4).fit(z)

    out = normaliser(z)
    out.sum().backward()

    assert not normaliser.mean.requires_grad and not normaliser.std.requires_grad
    # Only the direct path: d/dz Σ (z − μ)/σ = 1/σ. Attached batch statistics would change this.
    expected = (1 / normaliser.std).expand_as(z)
    torch.testing.assert_close(z.grad, expected)


def test_disabled_is_identity():
    z0, z1 = sample(seed=0), sample(seed=1)
    normaliser = EmbeddingNormaliser(4, enabled=False)

    normaliser.fit(z0)

    torch.testing.assert_close(normaliser(z1), z1)
    assert torch.equal(normaliser.mean, torch.zeros(4)) and torch.equal(normaliser.std, torch.ones(4))


@pytest.mark.parametrize("dim", [1, 7])
def test_unfitted_is_identity_shaped(dim):
    normaliser = EmbeddingNormaliser(dim)

    assert normaliser.mean.shape == (dim,) and normaliser.std.shape == (dim,)
    z = torch.randn(3, dim, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(normaliser(z), z)
