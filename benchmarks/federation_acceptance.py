"""Should a node accept rows that another node's detector finds benign? Federation-wide FPR against recall.

    .venv/bin/python benchmarks/federation_acceptance.py DATA [--cell NAME] [--seed 0] [--margins 1.0 0.8 0.6]
        [--quorums 1 2]

Trains fedcl (the default, personalised) on one benchmark cell, then scores each node's test rows
with its own detector, and again with ``acceptance_margin`` at each margin (:class:`fedcl.model.AcceptingDetector`:
a row is accepted when some other node's federation-view detector scores it below ``margin`` × that
node's threshold, or, with quorum q, when q other nodes' views do; every node's federation view at every
node: ~35 kB each). Prints, per margin and quorum, pooled
AUROC, FPR@TPR0.99, the worst node's AUROC, own-benign FPR, federation-wide benign FPR (the other nodes'
held-out benign rows) and recall at the thresholds, then the attack families whose flagged rows
acceptance lets through (rows a node flagged alone that another node's view finds benign); the last
line compares no acceptance with the last margin given.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fedcl.config import FedCLConfig
from fedcl.eval.metrics import detection_metrics
from fedcl.experiments._benchmark import named_cells
from fedcl.model import accepting
from fedcl.pipeline import fit_detectors


def copies_elsewhere(splits) -> float:
    """Share of attack rows equal (to 4 decimals, the ``HH_jit`` columns aside: they hold capture times in
    N-BaIoT) to a benign row of another node and to no benign row of their own: rows no detector that
    accepts the federation's benign traffic can flag."""
    keep = [i for i, c in enumerate(splits[0].columns) if "_jit_" not in c]

    def keys(X):
        return {row.tobytes() for row in np.round(X[:, keep], 4) + 0.0}  # + 0.0: -0.0 has other bytes

    benign = {s.name: keys(np.vstack([s.train, s.val, s.test_benign])) for s in splits}
    copies = total = 0
    for s in splits:
        elsewhere = set().union(*(benign[o.name] for o in splits if o.name != s.name)) - benign[s.name]
        copies += sum(row.tobytes() in elsewhere for row in np.round(s.attack[:, keep], 4) + 0.0)
        total += len(s.attack)
    return copies / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--cell", default="natural")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margins", type=float, nargs="+", default=[1.0, 0.8, 0.6])
    parser.add_argument("--quorums", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = FedCLConfig(data=args.data, seed=args.seed)
    (cell,) = named_cells([args.data], False, [args.cell])
    splits = cell.make_splits(config)
    detectors, _ = fit_detectors(splits, config)

    print(f"{args.cell}: attack rows equal to another node's benign row and to none of their node's (jitter columns "
          f"aside): {copies_elsewhere(splits):.3f}")
    families = np.concatenate([s.attack_family for s in splits])
    figures, flagged = {}, {}
    for margin, quorum in [(None, None), *((m, q) for m in args.margins for q in args.quorums)]:
        labels, scores, predictions, own, federation, recall, alarms, nodes = [], [], [], [], [], [], [], []
        now = detectors if margin is None else accepting(detectors, margin, quorum=quorum)
        for s in splits:
            detector = now[s.name]
            others = np.vstack([o.test_benign for o in splits if o.name != s.name])
            benign, attack = detector.decision_function(s.test_benign), detector.decision_function(s.attack)
            labels.append(np.r_[np.zeros(len(benign)), np.ones(len(attack))])
            scores.append(np.r_[benign, attack])
            predictions.append(scores[-1] > detector.threshold_)
            own.append(np.mean(benign > detector.threshold_))
            federation.append(np.mean(detector.predict(others)))
            alarms.append(attack > detector.threshold_)
            recall.append(np.mean(alarms[-1]))
            nodes.append(roc_auc_score(labels[-1], scores[-1]))
        key = (margin, quorum)
        flagged[key] = np.concatenate(alarms)
        y, z = np.concatenate(labels), np.concatenate(scores)
        pooled = detection_metrics(y, z, np.concatenate(predictions).astype(int))
        figures[key] = (pooled["auroc"], pooled["fpr_at_tpr99"], np.mean(own), np.mean(federation), np.mean(recall))
        print(f"{args.cell}, margin {margin}, quorum {quorum}: AUROC {figures[key][0]:.4f}, "
              f"FPR@TPR0.99 {figures[key][1]:.4f}, worst node AUROC {min(nodes):.4f}, "
              f"own-benign FPR {figures[key][2]:.4f}, federation-wide benign FPR {figures[key][3]:.4f}, "
              f"recall {figures[key][4]:.4f}", flush=True)
        if margin is not None:
            alone = flagged[None, None]
            lost = {f: np.sum(alone & ~flagged[key] & (families == f)) / max(np.sum(alone & (families == f)), 1)
                    for f in np.unique(families)}
            print("  flagged rows let through, by family: "
                  + (", ".join(f"{f} {share:.3f}" for f, share in lost.items() if share > 0) or "none"))
    none, last = figures[None, None], figures[args.margins[-1], args.quorums[-1]]
    print(f"acceptance at margin {args.margins[-1]}, quorum {args.quorums[-1]}: federation-wide benign FPR "
          f"{none[3]:.4f} -> {last[3]:.4f}, recall {none[4]:.4f} -> {last[4]:.4f}, AUROC {none[0]:.4f} -> {last[0]:.4f}")

if __name__ == "__main__":
    main()
