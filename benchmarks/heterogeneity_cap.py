"""Heterogeneity shortfall at Dirichlet α = 0.1: does capping the reported d_i at twice the median change it?

    .venv/bin/python benchmarks/heterogeneity_cap.py [DATA] [--alpha 0.1] [--seeds 0 1 2]

Deals DATA's rows to as many nodes as it has, as `fedcl experiment heterogeneity` does on fedmse-iid
(Dirichlet(α) over 8 k-means clusters of the benign rows, at least 100 benign rows per node; redrawn
per seed), then trains fedcl with the default config three ways: the default rule (dynamic-guarded),
the same rule with every reported d_i first capped at twice the round's median d, and FedAvg weights.
Prints pooled and worst-node AUROC (mean ± std over seeds), the largest weight of any node in any
round relative to a uniform 1/n, how often the cap binds, and the dealt nodes' sizes. The last line
prints the figures.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.data import dirichlet_partition, read_dataset
from fedcl.federated import runner
from fedcl.pipeline import fit_detectors, score_nodes, split_nodes, summarise

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"
MIN_BENIGN_ROWS = 100  # as fedcl.experiments' heterogeneity partitions
GUARDED = runner.ROBUST_RULES["dynamic-guarded"]
CAPPED = {"node_rounds": 0, "capped": 0}  # how often the cap binds


def capped_guarded_rule(arrays, updates):
    """The guarded rule on updates whose d_i is first capped at twice the median d_i of the round."""
    cap = 2 * float(np.median([u.distance for u in updates]))
    CAPPED["node_rounds"] += len(updates)
    CAPPED["capped"] += sum(u.distance > cap for u in updates)
    return GUARDED(arrays, [replace(u, distance=min(u.distance, cap)) for u in updates])


def run(splits, config: FedCLConfig, capped: bool) -> tuple[float, float, float]:
    """Pooled AUROC, worst-node AUROC and the largest weight × n over rounds."""
    runner.ROBUST_RULES["dynamic-guarded"] = capped_guarded_rule if capped else GUARDED
    try:
        detectors, result = fit_detectors(splits, config)
    finally:
        runner.ROBUST_RULES["dynamic-guarded"] = GUARDED
    summary = summarise(score_nodes(detectors, splits))
    worst = min(m["auroc"] for m in summary["nodes"].values() if m["auroc"] is not None)
    top = max(max(n["weight"] for n in r["nodes"].values()) * len(r["nodes"]) for r in result.history)
    return summary["pooled"]["auroc"], worst, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the experiment runner

    variants = {"dynamic-guarded": ("dynamic-guarded", False),
                "dynamic-guarded, d_i capped at 2x median": ("dynamic-guarded", True),
                "fedavg": ("fedavg", False)}
    results = {name: [] for name in variants}
    sizes = []  # benign rows (train + validation) of every dealt node
    nodes = read_dataset(args.data)
    print(f"{args.data} | leakage guard {FedCLConfig().leakage_guard} | Dirichlet α={args.alpha:g} | seeds {args.seeds}")
    for seed in args.seeds:
        config = FedCLConfig(data=args.data, seed=seed)
        dealt = dirichlet_partition(nodes, len(nodes), args.alpha, seed, groups="clusters", min_benign=MIN_BENIGN_ROWS)
        sizes += [len(n.benign) for n in dealt]
        splits = split_nodes(dealt, config)
        for name, (aggregation, capped) in variants.items():
            results[name].append(run(splits, config.updated(aggregation=aggregation), capped))
            pooled, worst, top = results[name][-1]
            print(f"seed {seed}: {name}: pooled AUROC {pooled:.4f}, worst node {worst:.4f}, "
                  f"largest weight {top:.2f}/n", flush=True)

    def cell(values) -> str:
        return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.4f}"

    for name, rows in results.items():
        pooled, worst, top = zip(*rows)
        print(f"{name:42s} pooled {cell(pooled)}  worst node {cell(worst)}  largest weight {max(top):.2f}/n")
    print(f"the cap bound on {CAPPED['capped']} of {CAPPED['node_rounds']} node-rounds; "
          f"dealt nodes hold {min(sizes):,} to {max(sizes):,} benign rows (train + validation)")
    print(" | ".join(f"{name}: worst node {cell([r[1] for r in rows])}" for name, rows in results.items()))


if __name__ == "__main__":
    main()
