"""1D-CNN over the five decay windows: the paper's supervised 1D-CNN row."""

from __future__ import annotations

import torch
from torch import nn

from ._base import _SupervisedClassifier
from ._layout import WINDOW_INDEX
from ._mlp import _TRAINING_NOTES, _TRAINING_PARAMETERS

__all__ = ["CNN1DClassifier"]


class _CNN1D(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("index", torch.from_numpy(WINDOW_INDEX.copy()), persistent=False)
        n_stats, n_windows = WINDOW_INDEX.shape
        self.features = nn.Sequential(
            nn.Conv1d(n_stats, channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool1d(2),  # 5 windows -> 2
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * (n_windows // 2), hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, x):  # (B, 115)
        grid = x[:, self.index]  # (B, 23 statistics = channels, 5 windows = length)
        return self.head(self.features(grid)).squeeze(-1)  # (B, C, 2) -> (B,)


class CNN1DClassifier(_SupervisedClassifier):
    __doc__ = f"""1D convolution along the decay windows, one input channel per statistic.

    Each row becomes a (23, 5) grid with :func:`to_windows`: channel ``s`` is statistic
    ``STATISTICS[s]`` (e.g. ``HH_jit_mean``), position ``w`` its value at decay factor
    ``WINDOWS[w]`` (λ = 5, 3, 1, 0.1, 0.01: neighbouring positions are neighbouring time scales, so
    a kernel of 3 compares a statistic over short and longer histories). Two Conv1d layers
    (kernel 3, ``channels`` filters, ReLU), max pooling over windows (5 → 2), then a linear layer
    of ``hidden`` units and the output logit.
{_TRAINING_NOTES}
    Parameters
    ----------
    channels : int, default=32
    hidden : int, default=32
{_TRAINING_PARAMETERS}"""

    def __init__(self, channels=32, hidden=32, lr=1e-3, weight_decay=1e-4, batch_size=128, max_epochs=100,
                 patience=10, threshold=0.5, random_state=0) -> None:
        self.channels = channels
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
            raise ValueError(f"CNN1DClassifier needs the {WINDOW_INDEX.size} N-BaIoT columns, got {n_features}")
        return _CNN1D(self.channels, self.hidden)

