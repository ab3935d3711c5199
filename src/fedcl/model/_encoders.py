"""Encoders f_θ: one row of 115 scaled features (NaN = missing) -> one embedding."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MLPEncoder(nn.Module):
    """Two hidden layers with GELU; no normalisation layers, so nothing node-specific hides in θ.

    Missing cells (NaN) are set to 0, the node's own mean after scaling. With ``missing_mask`` the
    encoder also reads which cells were missing (a second block of 0/1 inputs), so "missing" and
    "exactly average" are different inputs: the model can learn that a missing cell carries no
    evidence instead of treating the filled-in mean as a measurement. The training augmentation
    hides cells as NaN too, so hiding at training and missing at test reach the model the same way.

    Parameters
    ----------
    n_features : int
        Number of features per row (115 for N-BaIoT).
    hidden : int
        Width of both hidden layers.
    dim : int
        Embedding size.
    missing_mask : bool, default=False
        Feed the missing-value mask alongside the values (input width 2 · n_features).
    """

    def __init__(self, n_features: int = 115, hidden: int = 128, dim: int = 32, missing_mask: bool = False) -> None:
        super().__init__()
        self.missing_mask = missing_mask
        self.net = nn.Sequential(
            nn.Linear(n_features * (2 if missing_mask else 1), hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        # x: (batch, n_features), NaN = missing -> (batch, dim)
        missing = torch.isnan(x)
        x = x.masked_fill(missing, 0.0)
        if self.missing_mask:
            x = torch.cat([x, missing.to(x.dtype)], dim=1)
        return self.net(x)


# Later encoders (e.g. a 1D-CNN over the five decay windows) register here under a new name.
ENCODERS: dict[str, type[nn.Module]] = {"mlp": MLPEncoder}


def build_encoder(name: str, n_features: int, hidden: int, dim: int, missing_mask: bool = False) -> nn.Module:
    """Instantiate the encoder registered as ``name``."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name](n_features=n_features, hidden=hidden, dim=dim, missing_mask=missing_mask)


def encoder_for(config, n_features: int) -> nn.Module:
    """The encoder a :class:`fedcl.config.FedCLConfig` describes, for rows of ``n_features``."""
    return build_encoder(config.encoder, n_features, config.hidden, config.embedding_dim, config.missing_mask)


def initial_encoder(config, n_features: int) -> nn.Module:
    """The encoder a run starts from: a function of ``config.seed`` alone, drawn without touching (or
    depending on) torch's global random state, so every transport starts from the same θ."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return encoder_for(config, n_features)
