"""Should a node accept rows that another node's detector finds benign? Federation-wide FPR against recall.

    .venv/bin/python benchmarks/federation_acceptance.py DATA [--cell NAME] [--seed 0] [--margins 1.0 0.8 0.6]

Trains fedcl (the default, personalised) on one benchmark cell, then scores each node's test rows
with its own detector, and again accepting a row when some other node's federation-view detector
scores it below ``margin`` × that node's threshold (scores in units of the node's threshold, so 1
is the alarm line). That needs every node's federation-view detector at every node (its scaler,
embedding statistics, references and threshold: ~35 kB each). Prints pooled AUROC, FPR@TPR0.99,
own-benign FPR, federation-wide benign FPR (the other nodes' held-out benign rows) and recall at
the thresholds; the last line compares no acceptance with the loosest margin.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.eval.metrics import detection_metrics
from fedcl.experiments._benchmark import cells
from fedcl.pipeline import fit_detectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--cell", default="natural")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margins", type=float, nargs="+", default=[1.0, 0.8, 0.6])
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = FedCLConfig(data=args.data, seed=args.seed)
    cell = next(c for c in cells(args.data, False) if c.name == args.cell)
    splits = cell.make_splits(config)
    detectors, _ = fit_detectors(splits, config)
    shared = {name: d.shared for name, d in detectors.items()}

    def relative(detector, X):
        return detector.decision_function(X) / detector.threshold_

    figures = {}
    for margin in [None, *args.margins]:
        labels, scores, own, federation, recall = [], [], [], [], []
        for s in splits:
            def score(X):
                mine = relative(detectors[s.name], X)
                if margin is None:
                    return mine
                elsewhere = np.min([relative(shared[o.name], X) for o in splits if o.name != s.name], axis=0)
                return np.minimum(mine, elsewhere / margin)

            others = np.vstack([o.test_benign for o in splits if o.name != s.name])
            benign, attack = score(s.test_benign), score(s.attack)
            labels.append(np.r_[np.zeros(len(benign)), np.ones(len(attack))])
            scores.append(np.r_[benign, attack])
            own.append(np.mean(benign > 1))
            federation.append(np.mean(score(others) > 1))
            recall.append(np.mean(attack > 1))
        y, z = np.concatenate(labels), np.concatenate(scores)
        pooled = detection_metrics(y, z, (z > 1).astype(int))
        figures[margin] = (pooled["auroc"], pooled["fpr_at_tpr99"], np.mean(own), np.mean(federation), np.mean(recall))
        print(f"{args.cell}, margin {margin}: AUROC {figures[margin][0]:.4f}, FPR@TPR0.99 {figures[margin][1]:.4f}, "
              f"own-benign FPR {figures[margin][2]:.4f}, federation-wide benign FPR {figures[margin][3]:.4f}, "
              f"recall {figures[margin][4]:.4f}", flush=True)
    loose = args.margins[-1]
    print(f"acceptance at margin {loose}: federation-wide benign FPR {figures[None][3]:.4f} -> {figures[loose][3]:.4f}, "
          f"recall {figures[None][4]:.4f} -> {figures[loose][4]:.4f}, AUROC {figures[None][0]:.4f} -> {figures[loose][0]:.4f}")


if __name__ == "__main__":
    main()
