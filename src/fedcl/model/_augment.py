"""Augmentations that make two views of one row of scaled N-BaIoT features."""

from __future__ import annotations

import torch
from torch import Tensor


def augment(x: Tensor, mask_prob: float, noise_std: float, generator: torch.Generator) -> Tensor:
    """Random feature masking plus small Gaussian jitter, in the node's scaled feature space.

    Why these two: the 115 features are 23 statistics each seen through 5 decay windows, so they are
    highly redundant; hiding a random subset (set to NaN, exactly what a missing cell is) teaches the
    encoder to rely on that redundancy and to tolerate missing cells. The jitter (in units of the node's own standard deviation) stands for the measurement
    noise of damped statistics. Crops, flips or permutations, the usual image/sequence views, have
    no meaning for a fixed-order tabular row.

    Parameters
    ----------
    x : Tensor of shape (batch, n_features)
    mask_prob : float
        Probability that a feature is hidden.
    noise_std : float
        Standard deviation of the additive Gaussian noise.
    generator : torch.Generator
        Source of randomness, so that runs are reproducible.
    """
    hide = torch.rand(x.shape, generator=generator) < mask_prob
    noise = torch.randn(x.shape, generator=generator) * noise_std
    return (x + noise).masked_fill(hide, float("nan"))  # a cell missing already stays missing
