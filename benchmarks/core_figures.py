"""The core issue's figures: fedcl, its ablations and k-NN baselines, same splits, same run, 3 seeds.

    .venv/bin/python benchmarks/core_figures.py [--data PATH] [--seeds 0 1 2] [--guard on|strict] [--csv FILE]

Prints, per method, the mean ± std over seeds of pooled AUROC, pooled FPR at TPR 0.99, mean per-node
AUROC and wall time, and writes every (method, seed) row to a CSV. Every number comes from each
node's held-out benign test rows and its attack rows; nothing here is tuned on them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.baselines import KNNDetector
from fedcl.config import FedCLConfig
from fedcl.pipeline import load_detectors, load_splits, score_nodes, summarise, train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"
ABLATIONS = {
    "fedcl (guarded dynamic weights)": {},
    "fedcl, plain dynamic weights": {"aggregation": "dynamic"},
    "fedcl, FedAvg weights": {"aggregation": "fedavg"},
    "fedcl, λ = 0": {"consistency_weight": 0.0},
    "fedcl, no node normalisation": {"node_normalisation": False},
}


def fedcl_summary(config: FedCLConfig, splits) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        train(config, tmp, splits=splits)
        detectors = load_detectors(tmp)
    return summarise(score_nodes(detectors, splits))


def knn_summary(splits, pooled: bool) -> dict:
    """Local k-NN per node, or one k-NN on every node's training rows (raw data shared!)."""
    if pooled:
        shared = KNNDetector().fit(np.vstack([s.train for s in splits]), X_val=np.vstack([s.val for s in splits]))
        detectors = {s.name: shared for s in splits}
    else:
        detectors = {s.name: KNNDetector().fit(s.train, X_val=s.val) for s in splits}
    return summarise(score_nodes(detectors, splits))


def row(method: str, seed: int, summary: dict, seconds: float) -> dict:
    nodes = [m["auroc"] for m in summary["nodes"].values() if m["auroc"] is not None]
    return {"method": method, "seed": seed, "pooled_auroc": summary["pooled"]["auroc"],
            "pooled_fpr_at_tpr99": summary["pooled"]["fpr_at_tpr99"], "pooled_f1": summary["pooled"]["f1"],
            "mean_node_auroc": float(np.mean(nodes)), "min_node_auroc": float(np.min(nodes)), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--guard", choices=["on", "strict"], default="strict")
    parser.add_argument("--csv", default="core_figures.csv")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        base = FedCLConfig(data=args.data, seed=seed, leakage_guard=args.guard)
        splits = load_splits(base)
        for method, overrides in ABLATIONS.items():
            start = time.perf_counter()
            summary = fedcl_summary(base.updated(**overrides), splits)
            rows.append(row(method, seed, summary, time.perf_counter() - start))
        for method, pooled in (("k-NN per node (local only)", False), ("k-NN pooled (raw data shared!)", True)):
            start = time.perf_counter()
            rows.append(row(method, seed, knn_summary(splits, pooled), time.perf_counter() - start))
        print(f"seed {seed} done", flush=True)

    df = pd.DataFrame(rows)
    df.to_csv(args.csv, index=False)
    table = df.drop(columns="seed").groupby("method", sort=False).agg(["mean", "std"])
    print(f"\n{args.data} | leakage guard {args.guard} | seeds {args.seeds} | rows in {args.csv}\n")
    header = f"{'method':34s} {'pooled AUROC':>17s} {'FPR@TPR0.99':>17s} {'node AUROC':>17s} {'min node':>8s} {'s/run':>6s}"
    print(header)
    for method, r in table.iterrows():
        cells = [f"{r[(c, 'mean')]:.4f} ± {r[(c, 'std')]:.4f}" for c in ("pooled_auroc", "pooled_fpr_at_tpr99", "mean_node_auroc")]
        print(f"{method:34s} {cells[0]:>17s} {cells[1]:>17s} {cells[2]:>17s} {r[('min_node_auroc', 'mean')]:8.4f} {r[('seconds', 'mean')]:6.1f}")


if __name__ == "__main__":
    main()
