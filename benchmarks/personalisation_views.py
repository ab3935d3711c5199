"""Which views should a node's personalised detector combine? A design study on the development seed.

    .venv/bin/python benchmarks/personalisation_views.py DATA [DATA ...] [--cell NAME ...] [--seed 0] [--scores FILE]

Per benchmark cell, trains one federation and, per node, three encoders: the federation's
(*shared*), one trained on the node's rows alone from the seeded initial encoder (*own*, the default's
personal view) and the federation's fine-tuned on the node's rows with the same recipe
(*fine-tuned*: local fine-tuning, the usual personalisation of federated learning). Each view gets a
FedCLDetector on the node's rows; combinations map every view into the shared view's units at the
90th percentile of benign validation scores (as :class:`fedcl.model.PersonalDetector` does), take
the mean (or max, or a mean weighted per node from benign rows alone: :func:`view_weight`) and
threshold at the 99th percentile of the combined validation scores. Prints
pooled AUROC, FPR@TPR0.99 and the worst node's AUROC per cell and variant, then the means over the
cells; the last line compares the default, tail(shared, own), with the best other variant.
Default cells: those of the development study in docs/benchmark.md. ``--scores FILE`` keeps every
node's view scores (a pickle); a rerun with the same file reads them instead of training again.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fedcl.config import FedCLConfig
from fedcl.eval.metrics import fpr_at_tpr
from fedcl.experiments._benchmark import cells
from fedcl.federated import run_federation
from fedcl.model._combine import tail_weight
from fedcl.model._personal import SCALE_QUANTILE
from fedcl.pipeline import make_detector, own_encoder, scaled_training_rows, trained_encoder

PARTS = ("val", "benign", "attack", "train", "shuffled", "jittered")
VARIANTS = [(("shared",), "mean"), (("own",), "mean"), (("fine-tuned",), "mean"),
            (("shared", "own"), "mean"), (("shared", "fine-tuned"), "mean"), (("shared", "own", "fine-tuned"), "mean"),
            (("shared", "own"), "max"), (("shared", "own", "fine-tuned"), "max"),
            (("shared", "own"), "tail"), (("shared", "own", "fine-tuned"), "tail"),
            (("shared", "own"), "probe"), (("shared", "own", "fine-tuned"), "probe"),
            (("shared", "own"), "floor")]
DEFAULT = (("shared", "own"), "tail")  # personalisation "weighted"
DEFAULT_CELLS = ["natural", "home clusters", "Dirichlet α=0.5", "Dirichlet α=0.1", "home clusters, 500 train rows",
                 "natural, 250 train rows", "Dirichlet α=0.1, 500 train rows", "home clusters, 250 train rows",
                 "Dirichlet α=0.5, 250 train rows", "natural, 1000 train rows"]


def view_scores(data: str, cell_name: str, seed: int) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """node -> view -> scores of its validation, benign test and attack rows."""
    config = FedCLConfig(data=data, seed=seed)
    cell = next(c for c in cells(data, False) if c.name == cell_name)
    splits = cell.make_splits(config)
    federation = run_federation({s.name: scaled_training_rows(s) for s in splits}, config)
    n_features = splits[0].train.shape[1]
    recipe = config.updated(data="", aggregation="fedavg", personalisation="off")
    out = {}
    for s in splits:
        tuned = run_federation({s.name: scaled_training_rows(s)}, recipe, initial=federation.arrays)
        encoders = {"shared": trained_encoder(config, federation.arrays, n_features), "own": own_encoder(s, config),
                    "fine-tuned": trained_encoder(recipe, tuned.arrays, n_features)}
        # benign-only probes: validation rows with each column shuffled apart, or with every cell scaled
        rng = np.random.default_rng(seed)
        shuffled = np.column_stack([rng.permutation(column) for column in s.val.T])
        jittered = s.val * np.exp(rng.normal(0.0, 0.5, s.val.shape))
        out[s.name] = {}
        for view, encoder in encoders.items():
            detector = make_detector(encoder, recipe).fit(s.train, X_val=s.val)
            out[s.name][view] = {part: detector.decision_function(x) for part, x in
                                 zip(PARTS, (s.val, s.test_benign, s.attack, s.train, shuffled, jittered))}
    return out


def view_weight(scores: dict[str, np.ndarray], how: str) -> float:
    """A view's weight in a weighted mean, from benign rows only. *tail*: the default's
    (:func:`fedcl.model._combine.tail_weight`); *probe*: how far its AUROC of validation
    rows against the same rows with every column shuffled apart sits above chance."""
    if how == "tail":
        return tail_weight(scores["val"])
    if how == "probe":
        y = np.r_[np.zeros(len(scores["val"])), np.ones(len(scores["shuffled"]))]
        return max(roc_auc_score(y, np.r_[scores["val"], scores["shuffled"]]) - 0.5, 1e-12)
    return 1.0


def metrics(nodes: dict, views: tuple[str, ...], how: str) -> tuple[float, float, float]:
    """Pooled AUROC, FPR@TPR0.99 and worst node AUROC of one combination of views: their mean, max
    or a mean weighted per node (:func:`view_weight`); *floor*: the tail-weighted mean, never below the
    own view (whose alarms a poisoned shared model then cannot lower, as under max)."""
    labels, scores, node_auroc = [], [], []
    for node in nodes.values():
        unit = {v: np.quantile(node["shared"]["val"], SCALE_QUANTILE) / max(np.quantile(node[v]["val"], SCALE_QUANTILE),
                                                                          1e-12) for v in views}
        weight = np.array([view_weight(node[v], "tail" if how == "floor" else how) for v in views])[:, None]
        combined = {p: np.max([node[v][p] * unit[v] for v in views], axis=0) if how == "max" else
                    np.sum(weight * [node[v][p] * unit[v] for v in views], axis=0) / weight.sum()
                    for p in ("benign", "attack")}
        if how == "floor":
            combined = {p: np.maximum(c, node["own"][p] * unit["own"]) for p, c in combined.items()}
        y = np.r_[np.zeros(len(combined["benign"])), np.ones(len(combined["attack"]))]
        s = np.r_[combined["benign"], combined["attack"]]
        labels.append(y)
        scores.append(s)
        if 0 < y.sum() < len(y):
            node_auroc.append(roc_auc_score(y, s))
    y, s = np.concatenate(labels), np.concatenate(scores)
    return roc_auc_score(y, s), fpr_at_tpr(y, s), min(node_auroc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--cell", action="append", help="cell name (repeat); default: the study's cells")
    parser.add_argument("--seed", type=int, default=0, help="0: the development seed")
    parser.add_argument("--scores", type=Path, help="pickle of the view scores, read if it exists, else written")
    args = parser.parse_args()
    torch.set_num_threads(1)
    kept = pickle.loads(args.scores.read_bytes()) if args.scores and args.scores.exists() else {}

    results: dict[tuple, list] = {}
    for data in args.data:
        names = {c.name for c in cells(data, False)}
        for cell in [c for c in (args.cell or DEFAULT_CELLS) if c in names]:
            key = (data.rstrip("/").split("/")[-1], cell, args.seed)
            if key not in kept:
                kept[key] = view_scores(data, cell, args.seed)
                if args.scores:
                    args.scores.write_bytes(pickle.dumps(kept))
            nodes = kept[key]
            for views, how in VARIANTS:
                m = metrics(nodes, views, how)
                results.setdefault((views, how), []).append(m)
                print(f"{data.rstrip('/').split('/')[-1]} | {cell} | {how}({', '.join(views)}): "
                      f"AUROC {m[0]:.4f}, FPR@TPR0.99 {m[1]:.4f}, worst node {m[2]:.4f}", flush=True)
    print(f"means over {len(results[DEFAULT])} cells:")
    means = {k: np.mean(v, axis=0) for k, v in results.items()}
    for (views, how), m in means.items():
        print(f"  {how}({', '.join(views)}): AUROC {m[0]:.4f}, FPR@TPR0.99 {m[1]:.4f}, worst node {m[2]:.4f}")
    best = max((k for k in means if k != DEFAULT), key=lambda k: means[k][0])
    print(f"default tail(shared, own): AUROC {means[DEFAULT][0]:.4f}, FPR@TPR0.99 {means[DEFAULT][1]:.4f}; "
          f"best other {best[1]}({', '.join(best[0])}): AUROC {means[best][0]:.4f}, FPR@TPR0.99 {means[best][1]:.4f}")


if __name__ == "__main__":
    main()
