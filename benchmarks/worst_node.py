"""Why is a cell's worst node worst? Its sizes and where its benign test rows sit among its attacks.

    .venv/bin/python benchmarks/worst_node.py DATA --cell "Dirichlet α=0.1" [--seed 3]

Trains the default detector on one benchmark cell and seed, then prints every node's training,
validation and benign test rows and AUROC, and, personalised, each view's AUROC alone and its weight
in the node's score; for the worst node its benign test rows that score above its threshold, each with
the share of the node's attack rows that score below it (a benign row above most attacks is what costs
AUROC). The last line names the worst node, its AUROC and sizes.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fedcl.config import FedCLConfig
from fedcl.experiments._benchmark import named_cells
from fedcl.pipeline import fit_detectors
from fedcl.pipeline.scoring import score_nodes, summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--cell", default="Dirichlet α=0.1")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = FedCLConfig(data=args.data, seed=args.seed)
    splits = named_cells([args.data], False, [args.cell])[0].make_splits(config)
    detectors, _ = fit_detectors(splits, config)
    auroc = {name: m["auroc"] for name, m in summarise(score_nodes(detectors, splits))["nodes"].items()}
    for s in splits:
        views = getattr(detectors[s.name], "views", {})
        labels = np.r_[np.zeros(len(s.test_benign)), np.ones(len(s.attack))]
        alone = "".join(f"; {name} {roc_auc_score(labels, view.decision_function(np.r_[s.test_benign, s.attack])):.4f} "
                        f"(weight {detectors[s.name].weights_[name]:.2f})" for name, view in views.items())
        print(f"{s.name}: {len(s.train)} training, {len(s.val)} validation, {len(s.test_benign)} benign test rows; "
              f"AUROC {auroc[s.name]:.4f}{alone}")
    worst = min(auroc, key=auroc.get)
    split, detector = next(s for s in splits if s.name == worst), detectors[worst]
    benign, attack = detector.decision_function(split.test_benign), detector.decision_function(split.attack)
    above = np.sort(benign[benign > detector.threshold_])[::-1]
    print(f"{worst}: {len(above)} of {len(benign)} benign test rows above the threshold {detector.threshold_:.3f}; "
          "share of attacks below each: " + ", ".join(f"{np.mean(attack < b):.3f}" for b in above))
    print(f"worst node {worst}: AUROC {auroc[worst]:.4f}, {len(split.train)} training rows, "
          f"{len(split.test_benign)} benign test rows, {len(above)} of them above its threshold")


if __name__ == "__main__":
    main()
