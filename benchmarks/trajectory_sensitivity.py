"""How far a run moves when its start moves by a hair: float32 runs from a perturbed initial encoder.

    .venv/bin/python benchmarks/trajectory_sensitivity.py [--data PATH] [--cell natural] [--seed 2] [--runs 8]
        [--scale 1e-4]

Trains fedcl on one benchmark cell and seed, in float32, once as it is and ``--runs`` times with every
initial parameter multiplied by (1 + scale · N(0, 1)) (a fixed draw per run): the same splits, data order
and rounds, only the start differs, by about what compressed updates change in the first round (a relative
1e-4, docs/speed.md). Each run is scored as the default detector and with personalisation off (the
federation's encoder alone). Prints every run, then the spread per view: a difference a compressed run
shows that such runs also show is not the compression's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import fedcl.federated.runner as runner
from fedcl.config import FedCLConfig
from fedcl.experiments._benchmark import cell_splits, named_cells, run_cell
from fedcl.experiments._methods import Method, fedcl_method
from fedcl.experiments._privacy import shared_and_personal
from fedcl.experiments._runner import one_torch_thread

SIMULATED = Path.home() / ".cache" / "fedcl" / "simulated-seed0"


def perturbed_start(plain, scale: float, draw: int):
    """``plain`` (an ``initial_encoder``) with each parameter scaled by (1 + scale · N(0, 1)); draw 0 leaves it as
    it is. Each draw wraps ``plain`` itself, never an earlier draw's wrapper."""

    def initial_encoder(config, n_features):
        encoder = plain(config, n_features)
        if draw:
            generator = torch.Generator().manual_seed(draw)
            with torch.no_grad():
                for p in encoder.parameters():
                    p.mul_(1 + scale * torch.randn(p.shape, generator=generator))
        return encoder
    return initial_encoder


@one_torch_thread()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SIMULATED))
    parser.add_argument("--cell", default="natural")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--scale", type=float, default=1e-4)
    args = parser.parse_args()
    (cell,) = named_cells([args.data], False, [args.cell])
    config = FedCLConfig(data=args.data, seed=args.seed)
    splits = cell_splits(cell, config, quick=False)
    views = shared_and_personal(config)
    figures = {view: [] for view in views}
    plain = runner.initial_encoder
    try:
        for draw in range(args.runs + 1):
            runner.initial_encoder = perturbed_start(plain, args.scale, draw)  # the federation's start, and nothing else
            for view, mode in views.items():
                row = run_cell(cell, Method(view, "ablation", fedcl_method(personalisation=mode)), config, splits)
                figures[view].append((row["auroc"], row["fpr_at_tpr99"]))
                print(f"{'as it is' if draw == 0 else f'perturbed {draw}'} | {view}: AUROC {row['auroc']:.4f}, "
                      f"FPR@TPR0.99 {row['fpr_at_tpr99']:.4f}", flush=True)
    finally:
        runner.initial_encoder = plain
    for view, runs in figures.items():
        (a0, f0), rest = runs[0], np.array(runs[1:])
        print(f"{Path(args.data).name} | {args.cell} | seed {args.seed} | {view}, {args.runs} starts perturbed by "
              f"{args.scale:g}: AUROC {rest[:, 0].min():.4f}–{rest[:, 0].max():.4f}, FPR@TPR0.99 "
              f"{rest[:, 1].min():.4f}–{rest[:, 1].max():.4f} (as it is: {a0:.4f}, {f0:.4f})")


if __name__ == "__main__":
    main()
