"""Batch scoring throughput (rows/s) of a trained fedcl detector on one core, stage by stage.

    .venv/bin/python benchmarks/scoring_throughput.py [--data PATH] [--rows N] [--repeats R]

Trains a short federated run on the data (default: ../shared/data/nbaiot/fedmse-iid), then scores
N real rows (tiled) with one node's detector. Prints the end-to-end rate, and each stage's rate
measured alone over the whole batch (unchunked, so their shares do not add up to the chunked
end-to-end time), with ratios measured in the same run because these machines are noisy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.pipeline import load_detectors, load_splits, train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"


def best_rate(fn, rows: int, repeats: int) -> float:
    """Rows per second of the fastest of ``repeats`` calls (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return rows / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    config = FedCLConfig(data=args.data, rounds=args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        splits = load_splits(config)
        train(config, tmp, splits=splits)
        detectors = load_detectors(tmp)
    torch.set_num_threads(1)  # the target is per core
    split = splits[0]
    det = detectors[split.name]
    pool = np.vstack([split.test_benign, split.attack])
    x = np.resize(pool, (args.rows, pool.shape[1]))  # tile real rows up to N
    scaled = det.scaler_.transform(x)
    z = det._embed(scaled)
    z_norm = (z - det.mean_) / det.std_

    stages = {
        "end to end (decision_function)": lambda: det.decision_function(x),
        "  scaling (signed log1p + z-score)": lambda: det.scaler_.transform(x),
        "  encoder f_θ": lambda: det._embed(scaled),
        f"  k-NN score vs {len(det.references_)} references": lambda: det._score(z_norm),
    }
    print(f"node {split.name}: {args.rows:,} rows, 1 thread, best of {args.repeats}")
    total = None
    for name, fn in stages.items():
        rate = best_rate(fn, args.rows, args.repeats)
        total = total or rate
        print(f"{name:45s} {rate:>12,.0f} rows/s   {rate / total:5.2f}x end to end")
    print(f"target 200,000 rows/s: {'met' if total >= 200_000 else 'NOT met'} ({total / 200_000:.2f}x)")


if __name__ == "__main__":
    main()
