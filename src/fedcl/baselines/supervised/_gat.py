"""Graph attention classifier over the statistic graph: the paper's supervised GAT row."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._base import _SupervisedClassifier
from ._graph import _GraphNet, statistic_graph
from ._layout import WINDOW_INDEX
from ._mlp import _TRAINING_NOTES, _TRAINING_PARAMETERS

__all__ = ["GATClassifier"]


class _GATLayer(nn.Module):
    """Multi-head graph attention (Veličković et al. 2018) on a fixed dense mask, heads concatenated."""

    def __init__(self, in_dim: int, head_dim: int, heads: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.register_buffer("mask", mask, persistent=False)  # (N, N) bool, self loops included
        self.proj = nn.Linear(in_dim, heads * head_dim, bias=False)
        self.att_dst = nn.Parameter(0.1 * torch.randn(heads, head_dim))
        self.att_src = nn.Parameter(0.1 * torch.randn(heads, head_dim))
        self.bias = nn.Parameter(torch.zeros(heads * head_dim))

    def forward(self, h):  # (B, N, in) -> (B, N, heads * head_dim)
        b, n, _ = h.shape
        z = self.proj(h).view(b, n, self.heads, self.head_dim)  # (B, N, H, D)
        # e[b, i, j, k] = leaky_relu(a_dst·z_i + a_src·z_j) for head k: i attends to j.
        dst = (z * self.att_dst).sum(-1)  # (B, N, H)
        src = (z * self.att_src).sum(-1)  # (B, N, H)
        e = F.leaky_relu(dst[:, :, None, :] + src[:, None, :, :], 0.2)  # (B, N_i, N_j, H)
        e = e.masked_fill(~self.mask[None, :, :, None], float("-inf"))
        alpha = torch.softmax(e, dim=2)  # over neighbours j
        out = torch.einsum("bijk,bjkd->bikd", alpha, z).reshape(b, n, self.heads * self.head_dim)
        return F.elu(out + self.bias)


class GATClassifier(_SupervisedClassifier):
    __doc__ = f"""Graph attention network over the 23 statistics, then mean+max readout.

    Same graph as :class:`GNNClassifier` (:func:`statistic_graph` with self loops), but each node
    weighs its neighbours with learned, row-dependent attention (``heads`` heads of ``head_dim``
    units, concatenated, ELU), so the model can learn which related statistics matter for a given
    packet instead of averaging them with fixed degree weights. Node features are the 5
    decay-window values plus a learned identity embedding; ``n_layers`` attention layers, mean and
    max pooling over nodes, a linear layer of ``hidden`` units and the logit.
{_TRAINING_NOTES}
    Parameters
    ----------
    heads : int, default=4
    head_dim : int, default=8
    n_layers : int, default=2
    embedding : int, default=8
        Size of the learned identity embedding of each statistic.
    hidden : int, default=32
{_TRAINING_PARAMETERS}"""

    def __init__(self, heads=4, head_dim=8, n_layers=2, embedding=8, hidden=32, lr=1e-3, weight_decay=1e-4,
                 batch_size=128, max_epochs=100, patience=10, threshold=0.5, random_state=0) -> None:
        self.heads = heads
        self.head_dim = head_dim
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
            raise ValueError(f"GATClassifier needs the {WINDOW_INDEX.size} N-BaIoT columns, got {n_features}")
        if self.n_layers < 1 or self.heads < 1 or self.head_dim < 1:
            raise ValueError("n_layers, heads and head_dim must be >= 1")
        adjacency = statistic_graph()
        mask = torch.from_numpy(adjacency) | torch.eye(len(adjacency), dtype=torch.bool)
        width = self.heads * self.head_dim
        dims = [WINDOW_INDEX.shape[1] + self.embedding] + [width] * self.n_layers
        layers = [_GATLayer(i, self.head_dim, self.heads, mask) for i in dims[:-1]]
        return _GraphNet(layers, width, self.embedding, self.hidden)
