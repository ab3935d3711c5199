"""Temperature-scaled InfoNCE with cosine similarity and cross-view negatives only (not NT-Xent)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InfoNCELoss(nn.Module):
    """InfoNCE over a batch of paired views.

    For anchor a_i, the positive is b_i and the negatives are the other rows' views from the other
    side only, b_j for j ≠ i: N − 1 negatives per anchor in a batch of N rows. SimCLR's NT-Xent
    also uses the same-side views a_j (2N − 2 negatives); this loss does not. Both directions
    (a->b and b->a) are averaged.

    Parameters
    ----------
    temperature : float
        τ > 0; smaller values sharpen the softmax over similarities.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 1e-8:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, view_a: Tensor, view_b: Tensor) -> Tensor:
        # view_a, view_b: (batch, dim); row i of each is a view of the same traffic row
        a = F.normalize(view_a, dim=1)
        b = F.normalize(view_b, dim=1)
        logits = a @ b.T / self.temperature  # (batch, batch): cos(a_i, b_j) / τ
        target = torch.arange(len(a), device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
