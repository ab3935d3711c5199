"""Local training with the per-node centre μ_i, σ_i detached (fedcl) or differentiated through.

    .venv/bin/python benchmarks/normaliser_detach.py [DATA] [--seeds 0 1 2]

During local training fedcl normalises a batch's embeddings with that batch's mean and standard
deviation, detached from the graph (:class:`fedcl.model.EmbeddingNormaliser`). This trains fedcl
(default config) twice per seed, once as it is and once with a normaliser whose μ_i, σ_i keep their
gradient, and prints pooled AUROC and FPR at TPR 0.99 (mean ± std over seeds). Everything else,
the detector included, is unchanged. The last line prints the figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.federated import local
from fedcl.model import EmbeddingNormaliser
from fedcl.pipeline import fit_detectors, load_splits, score_nodes, summarise

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"
_EPS = 1e-6  # as EmbeddingNormaliser


class AttachedNormaliser(EmbeddingNormaliser):
    """EmbeddingNormaliser whose batch statistics stay in the graph."""

    def fit(self, z):
        if self.enabled:
            self.mean = z.mean(dim=0)
            self.std = z.std(dim=0, correction=0) + _EPS
        return self


def run(config: FedCLConfig, splits, attached: bool) -> tuple[float, float]:
    local.EmbeddingNormaliser = AttachedNormaliser if attached else EmbeddingNormaliser
    try:
        detectors, _ = fit_detectors(splits, config)
    finally:
        local.EmbeddingNormaliser = EmbeddingNormaliser
    pooled = summarise(score_nodes(detectors, splits))["pooled"]
    return pooled["auroc"], pooled["fpr_at_tpr99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the experiment runner

    variants = {"detached (fedcl)": False, "with gradient": True}
    results = {name: [] for name in variants}
    print(f"{args.data} | leakage guard {FedCLConfig().leakage_guard} | seeds {args.seeds}")
    for seed in args.seeds:
        config = FedCLConfig(data=args.data, seed=seed)
        splits = load_splits(config)
        for name, attached in variants.items():
            results[name].append(run(config, splits, attached))
            print(f"seed {seed}: {name}: AUROC {results[name][-1][0]:.4f}, FPR@TPR0.99 {results[name][-1][1]:.4f}",
                  flush=True)

    def cell(values) -> str:
        return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.4f}"

    print(" | ".join(f"{name}: AUROC {cell([r[0] for r in rows])}, FPR@TPR0.99 {cell([r[1] for r in rows])}"
                     for name, rows in results.items()))


if __name__ == "__main__":
    main()
