"""How many held-out attack rows of the supervised baselines are exact copies of a labelled training row.

    .venv/bin/python benchmarks/supervised_duplicates.py [DATA] [--seed 0] [--guard strict|on|off]

Builds the splits of `fedcl experiment compare` (default config, so the default leakage guard), gives the
supervised rows their labelled split (:func:`fedcl.baselines.supervised.labelled_split`: 30 % of each
node's attack rows for training, 10 % for early stopping), and counts the held-out attack rows, pooled
over nodes, that equal (after the guard; NaN equal to NaN) a row of the pooled labelled training set.
Then it fits the pooled MLP and 1D-CNN, as in the comparison table, and gives their pooled AUROC on
the held-out rows with and without those duplicates. The last line prints the figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fedcl.baselines.supervised import CNN1DClassifier, MLPClassifier, fit_supervised, labelled_split
from fedcl.config import FedCLConfig
from fedcl.pipeline import load_splits, score_nodes, summarise

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"


def row_keys(x: np.ndarray) -> list[bytes]:
    """One hashable key per row; every NaN maps to the same key, so masked cells compare equal."""
    x = np.where(np.isnan(x), np.inf, x).astype(np.float64)  # the guard leaves NaN, never inf
    return [r.tobytes() for r in x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guard", choices=["strict", "on", "off"], default=FedCLConfig().leakage_guard)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the experiment runner

    config = FedCLConfig(data=args.data, seed=args.seed, leakage_guard=args.guard)
    splits = load_splits(config)
    labelled, test_splits = labelled_split(splits, seed=config.seed)
    train_keys = set(row_keys(labelled.pooled().X_train))
    duplicate = {s.name: np.array([k in train_keys for k in row_keys(s.attack)], dtype=bool) for s in test_splits}
    n_dup = sum(int(d.sum()) for d in duplicate.values())
    n_attack = sum(len(d) for d in duplicate.values())
    share = n_dup / n_attack

    print(f"{args.data} | leakage guard {args.guard} | seed {args.seed}")
    print(f"held-out attack rows: {n_attack:,}; exact copies of a labelled training row: {n_dup:,} ({share:.1%})")
    auroc = {}
    for name, estimator in (("MLP", MLPClassifier(random_state=args.seed)),
                            ("1D-CNN", CNN1DClassifier(random_state=args.seed))):
        scores = score_nodes(fit_supervised(estimator, labelled, pooled=True), test_splits)
        dup_rows = np.concatenate([np.r_[np.zeros(len(s.test_benign), bool), duplicate[s.name]] for s in test_splits])
        auroc[name] = (summarise(scores)["pooled"]["auroc"], summarise(scores[~dup_rows])["pooled"]["auroc"])
        print(f"{name}: pooled AUROC {auroc[name][0]:.4f} with the duplicates, {auroc[name][1]:.4f} without")
    print(f"duplicates {share:.1%} of held-out attack rows; AUROC without them: "
          + ", ".join(f"{name} {without:.4f}" for name, (_, without) in auroc.items()))


if __name__ == "__main__":
    main()
