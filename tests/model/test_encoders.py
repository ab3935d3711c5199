"""Tests for the encoder registry."""

import pytest
import torch

from fedcl.model import ENCODERS, MLPEncoder, build_encoder


@pytest.mark.parametrize("n_features, hidden, dim", [(115, 16, 8), (10, 4, 1)])
def test_build_mlp_output_shape(n_features, hidden, dim):
    torch.manual_seed(0)

    encoder = build_encoder("mlp", n_features, hidden, dim)
    out = encoder(torch.randn(5, n_features))

    assert isinstance(encoder, MLPEncoder)
    assert out.shape == (5, dim)
    assert torch.isfinite(out).all()


def test_mlp_has_no_normalisation_layers():
    encoder = build_encoder("mlp", 115, 16, 8)

    kinds = {type(m) for m in encoder.modules()}

    assert not any(issubclass(k, torch.nn.modules.batchnorm._NormBase) or k is torch.nn.LayerNorm for k in kinds)
    assert list(encoder.buffers()) == []  # nothing node-specific outside θ


def test_unknown_name_lists_the_options():
    with pytest.raises(ValueError) as err:
        build_encoder("transformer", 115, 16, 8)

    message = str(err.value)
    assert "transformer" in message
    for name in ENCODERS:
        assert name in message


def test_missing_cells_reach_the_mask_encoder_as_missing_not_as_the_mean():
    torch.manual_seed(0)
    x = torch.randn(6, 115)
    filled = x.clone()
    filled[:, :40] = 0.0  # the node mean after scaling
    missing = x.clone()
    missing[:, :40] = float("nan")

    masked = build_encoder("mlp", 115, 16, 8, missing_mask=True)
    imputing = build_encoder("mlp", 115, 16, 8, missing_mask=False)

    assert masked.net[0].in_features == 230
    assert torch.isfinite(masked(missing)).all()
    assert not torch.allclose(masked(missing), masked(filled))  # the mask tells them apart
    assert torch.equal(imputing(missing), imputing(filled))  # imputation alone cannot
