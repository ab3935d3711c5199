"""How far the dynamic weights stray from uniform on a data set as it is (honest nodes, no attack).

    .venv/bin/python benchmarks/weight_spread.py [DATA] [--seeds 0 1 2] [--rules dynamic dynamic-guarded]

Trains fedcl with the default config under each rule and reads each round's per-node weights w_i
from the history. Prints, per rule, the range of n·w_i over every round, node and seed (1 = uniform;
nodes the guarded rule sets aside for a round, w_i = 0, are counted apart). The last line prints
the figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.pipeline import fit_detectors, load_splits

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rules", nargs="+", default=["dynamic", "dynamic-guarded"])
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the experiment runner

    print(f"{args.data} | leakage guard {FedCLConfig().leakage_guard} | seeds {args.seeds}")
    summary = {}
    for rule in args.rules:
        relative = []
        for seed in args.seeds:
            config = FedCLConfig(data=args.data, seed=seed, aggregation=rule)
            _, result = fit_detectors(load_splits(config), config)
            relative += [n["weight"] * len(r["nodes"]) for r in result.history for n in r["nodes"].values()]
        relative = np.array(relative)
        kept = relative[relative > 0]
        summary[rule] = (kept.min(), kept.max(), int((relative == 0).sum()), len(relative))
        print(f"{rule}: n·w_i from {kept.min():.3f} to {kept.max():.3f}; "
              f"set aside in {summary[rule][2]} of {len(relative)} node-rounds", flush=True)
    print(" | ".join(f"{rule}: {lo - 1:+.0%} to {hi - 1:+.0%} of uniform, {zero} of {n} node-rounds set aside"
                     for rule, (lo, hi, zero, n) in summary.items()))


if __name__ == "__main__":
    main()
