"""Graph convolutional classifier over the statistic graph: the paper's supervised GNN row."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._base import _SupervisedClassifier
from ._graph import _GraphNet, statistic_graph
from ._layout import WINDOW_INDEX
from ._mlp import _TRAINING_NOTES, _TRAINING_PARAMETERS

__all__ = ["GNNClassifier"]


def _normalised(adjacency: np.ndarray) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 (Kipf & Welling), as a float32 tensor."""
    a = adjacency.astype(np.float32) + np.eye(len(adjacency), dtype=np.float32)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return torch.from_numpy(d[:, None] * a * d[None, :])


class _GCNLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, a_hat: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a_hat", a_hat, persistent=False)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, h):  # (B, N, in) -> (B, N, out)
        # out[b, i] = relu(sum_j Â[i, j] (W h[b, j]) + bias)
        return torch.relu(torch.einsum("ij,bjd->bid", self.a_hat, self.linear(h)))


class GNNClassifier(_SupervisedClassifier):
    __doc__ = f"""Graph convolutional network (GCN) over the 23 statistics, then mean+max readout.

    The graph is :func:`statistic_graph` (statistics of the same stream, and the same quantity
    across streams), fixed, with self loops and symmetric normalisation
    ``Â = D^-1/2 (A + I) D^-1/2``. Node features are the statistic's 5 decay-window values plus a
    learned identity embedding; ``n_layers`` GCN layers ``H ← relu(Â H W)`` of ``width`` units,
    mean and max pooling over nodes, a linear layer of ``hidden`` units and the logit.
{_TRAINING_NOTES}
    Parameters
    ----------
    width : int, default=32
    n_layers : int, default=2
    embedding : int, default=8
        Size of the learned identity embedding of each statistic.
    hidden : int, default=32
{_TRAINING_PARAMETERS}"""

    def __init__(self, width=32, n_layers=2, embedding=8, hidden=32, lr=1e-3, weight_decay=1e-4,
                 batch_size=128, max_epochs=100, patience=10, threshold=0.5, random_state=0) -> None:
        self.width = width
        self.n_layers = n_layers
        self.embedding = embedding
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.threshold = threshold
        self.random_state = random_state

    def _build_module(self, n_features: int) -> nn.Module:
        if n_features != WINDOW_INDEX.size:
            raise ValueError(f"GNNClassifier needs the {WINDOW_INDEX.size} N-BaIoT columns, got {n_features}")
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {self.n_layers}")
        a_hat = _normalised(statistic_graph())
        dims = [WINDOW_INDEX.shape[1] + self.embedding] + [self.width] * self.n_layers
        layers = [_GCNLayer(i, o, a_hat) for i, o in zip(dims[:-1], dims[1:])]
        return _GraphNet(layers, self.width, self.embedding, self.hidden)
