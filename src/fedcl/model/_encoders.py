"""Encoders f_θ: one row of 115 scaled features -> one embedding."""

from __future__ import annotations

from torch import Tensor, nn


class MLPEncoder(nn.Module):
    """Two hidden layers with GELU; no normalisation layers, so nothing node-specific hides in θ.

    Parameters
    ----------
    n_features : int
        Input width (115 for N-BaIoT).
    hidden : int
        Width of both hidden layers.
    dim : int
        Embedding size.
    """

    def __init__(self, n_features: int = 115, hidden: int = 128, dim: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        # x: (batch, n_features) -> (batch, dim)
        return self.net(x)


# Later encoders (e.g. a 1D-CNN over the five decay windows) register here under a new name.
ENCODERS: dict[str, type[nn.Module]] = {"mlp": MLPEncoder}


def build_encoder(name: str, n_features: int, hidden: int, dim: int) -> nn.Module:
    """Instantiate the encoder registered as ``name``."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name](n_features=n_features, hidden=hidden, dim=dim)
