"""How many references should a small node score against? A design study on the development seed.

    .venv/bin/python benchmarks/reference_count.py DATA [DATA ...] [--cell NAME ...] [--seed 0]

Per benchmark cell with a node under 1,024 training rows (unseen-device cells left out: their nodes'
detectors are those of the trained-in cells), trains one federation and each node's own encoder, then
fits every node's detectors with ``rows_per_reference`` r = 1 (a node of at most 256 rows scored against
its rows themselves, the former rule), 2 (the default), 4 and 8: at most one k-means centroid per r
training rows, and 256 at most. r = 8 also changes nodes of 1,024 to 2,040 rows, which the cells run
here leave out (the near-IID split and the simulated network at full size). Prints pooled AUROC,
FPR@TPR0.99 and the worst node's AUROC of the default detector (personalised), the federation's encoder
alone (*shared*) and our encoder trained on the node alone (*local*), then the means over the cells; the
last line compares r = 2 with r = 1.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.experiments._benchmark import cells
from fedcl.federated import run_federation
from fedcl.pipeline import make_detector, own_encoder, scaled_training_rows, trained_encoder
from fedcl.pipeline.scoring import score_nodes, summarise

RATIOS = (1, 2, 4, 8)


def figures(detectors: dict, splits: list) -> tuple[float, float, float]:
    """Pooled AUROC, FPR@TPR0.99 and the worst node's AUROC."""
    summary = summarise(score_nodes(detectors, splits))
    nodes = [m["auroc"] for m in summary["nodes"].values() if m["auroc"] is not None]
    return summary["pooled"]["auroc"], summary["pooled"]["fpr_at_tpr99"], min(nodes)


def cell_figures(data: str, cell_name: str, seed: int) -> dict[tuple[str, int], tuple[float, float, float]]:
    """(detector, r) -> figures, for one cell: one federation, each node's own encoder trained once."""
    config = FedCLConfig(data=data, seed=seed)
    splits = next(c for c in cells(data, False) if c.name == cell_name).make_splits(config)
    federation = run_federation({s.name: scaled_training_rows(s, config) for s in splits}, config)
    shared = trained_encoder(config, federation.arrays, splits[0].train.shape[1])
    own = {s.name: own_encoder(s, config) for s in splits}
    out = {}
    for r in RATIOS:
        cfg = config.updated(rows_per_reference=r)
        off = cfg.updated(personalisation="off")
        views = {"personalised": lambda s: make_detector(shared, cfg, own[s.name]),
                 "shared": lambda s: make_detector(shared, off), "local": lambda s: make_detector(own[s.name], off)}
        for name, make in views.items():
            out[name, r] = figures({s.name: make(s).fit(s.train, X_val=s.val) for s in splits}, splits)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--cell", action="append", help="cell name (repeat); default: every cell with a small node")
    parser.add_argument("--seed", type=int, default=0, help="0: the development seed")
    args = parser.parse_args()
    torch.set_num_threads(1)

    results: dict[tuple[str, int], list] = {}
    for data in args.data:
        config = FedCLConfig(data=data, seed=args.seed)
        for cell in cells(data, False):
            small = min(len(s.train) for s in cell.make_splits(config)) < 1024
            if cell.unseen or (args.cell and cell.name not in args.cell) or (not args.cell and not small):
                continue
            for key, m in cell_figures(data, cell.name, args.seed).items():
                results.setdefault(key, []).append(m)
                print(f"{data.rstrip('/').split('/')[-1]} | {cell.name} | {key[0]}, r = {key[1]}: AUROC {m[0]:.4f}, "
                      f"FPR@TPR0.99 {m[1]:.4f}, worst node {m[2]:.4f}", flush=True)
    means = {key: np.mean(v, axis=0) for key, v in results.items()}
    print(f"means over {len(results['personalised', 1])} cells:")
    for (name, r), m in means.items():
        print(f"  {name}, r = {r}: AUROC {m[0]:.4f}, FPR@TPR0.99 {m[1]:.4f}, worst node {m[2]:.4f}")
    new, old = means["personalised", 2], means["personalised", 1]
    print(f"default detector, rows_per_reference 2 against 1: AUROC {new[0]:.4f} against {old[0]:.4f}, "
          f"FPR@TPR0.99 {new[1]:.4f} against {old[1]:.4f}, worst node {new[2]:.4f} against {old[2]:.4f}")


if __name__ == "__main__":
    main()
