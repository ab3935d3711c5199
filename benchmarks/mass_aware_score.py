"""Does a mass-aware score resist attack rows in the benign training data better than fedcl's score?

    .venv/bin/python benchmarks/mass_aware_score.py [DATA] [--seed 0] [--levels 0 0.05] [--masses 0.01 0.05]

For each contamination level (the "attack rows in benign training" corruption of `fedcl experiment
corruption`, same seeded draw) it trains fedcl with the default config and fits each node's
detector. Every test row then gets two scores in the node's z̃ space: fedcl's (mean distance to the
5 nearest of 256 k-means centroids of the node's training embeddings) and the mass-aware one (mean
distance to the nearest ⌈q·n⌉ of the node's n training embeddings, for each q in --masses). A few
contaminating attack rows then weigh little against q·n neighbours. Prints pooled AUROC per level
and score; the last line prints the figures.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fedcl.config import FedCLConfig
from fedcl.experiments._corruption import corrupt
from fedcl.pipeline import fit_detectors, load_splits

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"
CONTAMINATION = "attack rows in benign training"


@torch.inference_mode()
def embedded(det, x: np.ndarray) -> torch.Tensor:
    """Rows (n, 115) in the node's normalised embedding space z̃: (n, dim)."""
    det.encoder.eval()
    z = det.encoder(torch.from_numpy(np.ascontiguousarray(det.scaler_.transform(x), dtype=np.float32)))
    return (z - det.mean_) / det.std_


def mass_score(train: torch.Tensor, test: torch.Tensor, k: int) -> np.ndarray:
    """Mean distance of each test row to its k nearest training embeddings: (n_test,)."""
    return torch.cdist(test, train).topk(k, dim=1, largest=False).values.mean(dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--masses", type=float, nargs="+", default=[0.01, 0.05])
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the experiment runner

    config = FedCLConfig(data=args.data, seed=args.seed)
    print(f"{args.data} | leakage guard {config.leakage_guard} | seed {args.seed}")
    results = {}
    for level in args.levels:
        splits = corrupt(load_splits(config), CONTAMINATION, level, config.seed)
        detectors, _ = fit_detectors(splits, config)
        labels, fedcl_scores, mass_scores = [], [], {q: [] for q in args.masses}
        for s in splits:
            det = detectors[s.name]
            x = np.vstack([s.test_benign, s.attack])
            labels.append(np.r_[np.zeros(len(s.test_benign)), np.ones(len(s.attack))])
            fedcl_scores.append(det.decision_function(x))
            train, test = embedded(det, s.train), embedded(det, x)
            for q in args.masses:
                mass_scores[q].append(mass_score(train, test, max(1, math.ceil(q * len(train)))))
        y = np.concatenate(labels)
        results[level] = {"fedcl": roc_auc_score(y, np.concatenate(fedcl_scores)),
                          **{f"mass {q:.0%}": roc_auc_score(y, np.concatenate(v)) for q, v in mass_scores.items()}}
        print(f"contamination {level:g}: pooled AUROC " + ", ".join(f"{k} {v:.4f}" for k, v in results[level].items()),
              flush=True)
    print(" | ".join(f"contamination {level:g}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items())
                     for level, r in results.items()))


if __name__ == "__main__":
    main()
