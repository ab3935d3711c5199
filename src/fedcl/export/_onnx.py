"""Encoders to one ONNX graph, checked against torch on probe rows before it is kept."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 20  # Gelu is an ONNX operator from opset 20: one node instead of an Erf decomposition
# How far ONNX Runtime's embeddings may sit from torch's (float32 GEMMs summed in another order).
_RTOL, _ATOL = 1e-4, 1e-5


class _Views(nn.Module):
    """Every view's encoder in one module: inputs x_<view> (rows, n_features) -> outputs z_<view> (rows, dim)."""

    def __init__(self, encoders: dict[str, nn.Module]) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(encoder(x) for encoder, x in zip(self.encoders.values(), xs, strict=True))


def encoders_to_onnx(encoders: dict[str, nn.Module], n_features: int, path: str | Path) -> None:
    """Write ``encoders`` (view name -> encoder, in order) as one ONNX graph at ``path``.

    The graph reads scaled rows with NaN for missing cells, as the encoders do, with any number of
    rows. After writing, ONNX Runtime's embeddings of random probe rows are compared with torch's:
    a mismatch is a bug of the export, and raises RuntimeError.
    """
    views = _Views(encoders).eval()
    names = list(encoders)
    example = tuple(torch.zeros(2, n_features) for _ in names)
    rows = torch.export.Dim("rows")
    with warnings.catch_warnings(), _quiet("torch.onnx", "torch.export", "onnxscript"):
        warnings.simplefilter("ignore")  # the exporter's deprecation notes are not the user's concern
        program = torch.onnx.export(
            views, example, dynamo=True, opset_version=OPSET, verbose=False, external_data=False,
            input_names=[f"x_{v}" for v in names], output_names=[f"z_{v}" for v in names],
            dynamic_shapes=(tuple({0: rows} for _ in names),),  # one entry: forward's *xs
        )
    program.save(str(path), external_data=False)
    _check(views, names, n_features, path)


def _check(views: _Views, names: list[str], n_features: int, path: str | Path) -> None:
    """RuntimeError unless ONNX Runtime reproduces torch's embeddings of random rows (NaN included)."""
    import onnxruntime

    rng = np.random.default_rng(0)
    probe = rng.normal(0, 2, size=(64, n_features)).astype(np.float32)
    probe[rng.random(probe.shape) < 0.1] = np.nan
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {f"x_{v}": probe for v in names})
    with torch.inference_mode():
        want = views(*(torch.from_numpy(probe) for _ in names))
    for v, g, w in zip(names, got, want, strict=True):
        if not np.allclose(g, w.numpy(), rtol=_RTOL, atol=_ATOL):
            raise RuntimeError(f"ONNX encoder of view {v!r} differs from torch by up to "
                               f"{np.abs(g - w.numpy()).max():.2e}")


class _quiet:
    """Raise the named loggers to ERROR for a block (the exporter logs progress and skipped ops)."""

    def __init__(self, *names: str) -> None:
        self.loggers = [logging.getLogger(n) for n in names]

    def __enter__(self) -> None:
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc) -> None:
        for lg, level in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(level)
