"""The graph over the 23 N-BaIoT statistics used by the GCN and GAT classifiers."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._layout import STATISTICS, STREAMS, WINDOW_INDEX

__all__ = ["statistic_graph"]

# Variance (MI_dir, H) and std (HH, HpHp) both measure the spread of packet sizes.
_KIND = {"variance": "spread", "std": "spread"}


def _measured(stream: str, quantity: str) -> str:
    """What a statistic is about: packet counts, packet sizes, or inter-arrival times (HH_jit)."""
    if quantity == "weight":
        return "count"
    return "time" if stream == "HH_jit" else "size"


def statistic_graph() -> np.ndarray:
    """Adjacency of the 23 statistics (no self loops; layers add them).

    Two statistics are joined when

    - they belong to the same stream (``MI_dir``, ``H``, ``HH``, ``HH_jit``, ``HpHp``): they are
      computed from the same damped window of the same packets, and are tied by construction
      (the weight normalises the mean, the variance is taken around that mean, ``HH`` magnitude and
      radius combine the two directions' means and variances, ``pcc`` = covariance / stds);
    - or they are the same kind of quantity in different streams: the damped packet count
      (``weight``) of every stream, the size mean of ``MI_dir``/``H``/``HH``/``HpHp``, their size
      spread (variance or std), and the ``HH``/``HpHp`` magnitude, radius, covariance and pcc.
      These streams aggregate the same packets at nested granularities (source MAC-IP, source IP,
      channel, socket), so the same quantity moves together across them, and a scan or a flood
      shows as a break of that pattern (e.g. many sockets with one packet each: ``HpHp`` weights
      small while ``H`` weight is large).

    The jitter mean and variance of ``HH_jit`` measure inter-arrival times, not sizes, so they are
    joined only inside their stream (and through ``HH_jit_weight`` to the other counts).

    Returns
    -------
    adjacency : ndarray of shape (23, 23), bool
        Symmetric, zero diagonal, rows in ``STATISTICS`` order.
    """
    quantity = [s[len(stream) + 1:] for s, stream in zip(STATISTICS, STREAMS)]
    kind = [(_KIND.get(q, q), _measured(stream, q)) for stream, q in zip(STREAMS, quantity)]
    n = len(STATISTICS)
    adjacency = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            if i != j and (STREAMS[i] == STREAMS[j] or kind[i] == kind[j]):
                adjacency[i, j] = True
    return adjacency


class _GraphNet(nn.Module):
    """Shared skeleton of the graph classifiers: statistic nodes, message passing, readout, logit.

    Node ``s`` of a row starts as its 5-window vector ``x[:, WINDOW_INDEX[s]]`` concatenated with a
    learned embedding of the statistic's identity: mean/max readout is blind to node order, so
    without it the model could not tell ``HH_jit_mean`` from ``HpHp_pcc``.
    """

    def __init__(self, layers: list[nn.Module], width: int, embedding: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("index", torch.from_numpy(WINDOW_INDEX.copy()), persistent=False)
        self.identity = nn.Parameter(0.1 * torch.randn(len(STATISTICS), embedding))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.Linear(2 * width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x):  # (B, 115)
        h = x[:, self.index]  # (B, N=23, W=5)
        h = torch.cat([h, self.identity.expand(len(x), -1, -1)], dim=-1)  # (B, N, W + E)
        for layer in self.layers:
            h = layer(h)  # (B, N, D)
        pooled = torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=-1)  # (B, 2D)
        return self.head(pooled).squeeze(-1)
