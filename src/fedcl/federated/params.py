"""Move model parameters between torch modules and lists of numpy arrays (the wire format)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def get_arrays(model: nn.Module) -> list[np.ndarray]:
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_arrays(model: nn.Module, arrays: list[np.ndarray]) -> None:
    state = model.state_dict()
    if len(arrays) != len(state):
        raise ValueError(f"model has {len(state)} arrays, got {len(arrays)}")
    # Rebuild with each buffer's own dtype: integer buffers break if cast to float.
    model.load_state_dict(
        {k: torch.as_tensor(a, dtype=v.dtype).reshape(v.shape) for (k, v), a in zip(state.items(), arrays)}
    )
