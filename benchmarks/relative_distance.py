"""Should a node score rows by distance, or by distance in units of its references' spacing? A design study.

    .venv/bin/python benchmarks/relative_distance.py DATA [DATA ...] [--cell NAME ...] [--seed 0]

Per benchmark cell (default: every cell of the folders but the unseen-device ones, which train a
federation per node; with two folders, also those where a node of the other joins) trains fedcl once
(the default, personalised) and scores every node's held-out rows with absolute distances
(``relative_distance = false``, the former score) and with relative ones at local weights 0, 0.5, 1
and 2 (``local_weight``; the default is 0.5). The references are the same in every variant;
each node's two views are combined and thresholded again on its benign validation rows. Prints
pooled AUROC and FPR@TPR0.99 per cell and variant, the means over the cells of one network and over
those with a node from another; the last line compares the default (relative, 0.5) with absolute
distances. Seed 0 is the development seed.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.experiments._benchmark import named_cells
from fedcl.pipeline import fit_detectors, score_nodes, summarise

VARIANTS = {"absolute": None, "relative 0": 0.0, "relative 0.5": 0.5, "relative 1": 1.0, "relative 2": 2.0}


@contextmanager
def scored_as(detectors: dict, local_weight: float | None):
    """Every view scores absolute distances (None) or relative ones at ``local_weight``, inside the block."""
    views = [v for d in detectors.values() for v in (d.shared, d.own)]
    before = views[0].local_weight
    for view in views:
        view.relative = local_weight is not None
        view.local_weight = before if local_weight is None else local_weight
    try:
        yield
    finally:
        for view in views:
            view.relative, view.local_weight = True, before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--cell", action="append", help="cell name (repeat); default: every cell but unseen devices")
    parser.add_argument("--seed", type=int, default=0, help="0: the development seed")
    args = parser.parse_args()
    torch.set_num_threads(1)

    chosen = [c for c in named_cells(args.data, False, args.cell or ()) if not c.unseen]
    figures = {name: {"one network": [], "a node from another": []} for name in VARIANTS}
    for cell in chosen:
        config = FedCLConfig(data=cell.data, seed=args.seed)
        splits = cell.make_splits(config)
        detectors, _ = fit_detectors(splits, config)
        group = "one network" if cell.foreign is None else "a node from another"
        line = []
        for name, local_weight in VARIANTS.items():
            with scored_as(detectors, local_weight):
                for s in splits:
                    detectors[s.name].calibrate(s.val)
                pooled = summarise(score_nodes(detectors, splits))["pooled"]
            figures[name][group].append((pooled["auroc"], pooled["fpr_at_tpr99"]))
            line.append(f"{name} {pooled['auroc']:.4f} / {pooled['fpr_at_tpr99']:.3f}")
        print(f"{cell.data.rstrip('/').split('/')[-1]} | {cell.name}: " + " | ".join(line), flush=True)

    def mean(name: str, group: str) -> str:
        runs = figures[name][group]
        return f"{np.mean([a for a, _ in runs]):.4f} / {np.mean([f for _, f in runs]):.3f}" if runs else "-"

    for group in ("one network", "a node from another"):
        print(f"means, {group} ({len(figures['absolute'][group])} cells; AUROC / FPR@TPR0.99): "
              + " | ".join(f"{name} {mean(name, group)}" for name in VARIANTS))
    print("relative (0.5) against absolute distances: "
          + "; ".join(f"{group} {mean('relative 0.5', group)} against {mean('absolute', group)}"
                      for group in ("one network", "a node from another")))


if __name__ == "__main__":
    main()
