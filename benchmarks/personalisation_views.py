"""Which views should a node's personalised detector combine? A design study on the development seed.

    .venv/bin/python benchmarks/personalisation_views.py DATA [DATA ...] [--cell NAME ...] [--seed 0] [--scores FILE]
        [--tune-rounds R ...] [--tune-only head|input ...] [--config FILE] [--own-from FILE]

Per benchmark cell, trains one federation and, per node, three encoders: the federation's (*shared*),
one trained on the node's rows alone from the seeded initial encoder (*own*) and the federation's
fine-tuned on the node's rows with the same recipe (*fine-tuned*: local fine-tuning, the usual
personalisation of federated learning; ``--tune-rounds R`` adds the same fine-tuned for R rounds only,
*fine-tuned R*; ``--tune-only head`` or ``input`` the same fine-tuning of the encoder's last layer only, a
personal head, or first layer only, *head-tuned* and *input-tuned*; each alone and as the third view of
``tuned``). Each view gets a FedCLDetector on the node's rows;
combinations map every view into one view's units (the shared view's, as ``personalisation =
"weighted"`` does, unless a variant says ``in own units``, as ``tuned``) at the 90th percentile of
benign validation scores, take the mean (or max, or a mean weighted per node from benign rows alone:
:func:`view_weight`, the own view's tail weight counted ``odds`` times where a variant says so) and
threshold at the 99th percentile of the combined validation scores. Prints pooled AUROC, FPR@TPR0.99 and
the worst node's AUROC per cell, seed and variant, then per variant the means over the cells (each
cell's mean over the seeds), FPR@TPR0.99 apart per network, and in how many cells it is at least the own
view alone (*our encoder, local only* of the benchmark) on both pooled figures; the last line compares
the default (``tuned``: tail(shared, own, fine-tuned) in own units, own odds 2) with the best other
variant.
Default cells: those of the development study in docs/benchmark.md. ``--scores FILE`` keeps every
node's view scores (a pickle); a rerun with the same file reads them instead of training again.
``--config FILE`` trains under other config keys (a TOML file, as ``fedcl run --config``; keep its scores
in a file of their own); ``--own-from FILE`` then combines its views with the own view of another run's
scores (a pickle of the same cells and seeds, e.g. under the default keys): the federation trained one way,
the node's own encoder another.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fedcl.config import FedCLConfig, load_config
from fedcl.eval.metrics import fpr_at_tpr
from fedcl.experiments._benchmark import cells
from fedcl.federated import run_federation
from fedcl.model._combine import tail_weight
from fedcl.model._personal import SCALE_QUANTILE
from fedcl.pipeline import make_detector, own_encoder, scaled_training_rows, trained_encoder, tuned_encoder

PARTS = ("val", "benign", "attack", "train", "shuffled", "jittered")
# (views, how, the unit view, the own view's odds in a weighted mean)
VARIANTS = [(("shared",), "mean", "shared", 1), (("own",), "mean", "own", 1), (("fine-tuned",), "mean", "fine-tuned", 1),
            *((views, how, "shared", 1) for how in ("mean", "max", "tail", "probe")
              for views in (("shared", "own"), ("shared", "fine-tuned"), ("shared", "own", "fine-tuned"))
              if how == "mean" or "own" in views),
            (("shared", "own"), "floor", "shared", 1),
            # the units a node's scores pool in, and how much the own view counts (a study of session 15)
            *((("shared", "own"), "tail", unit, odds) for unit in ("shared", "own") for odds in (1, 1.5, 2, 3, 4)
              if (unit, odds) != ("shared", 1)),
            (("shared", "own", "fine-tuned"), "tail", "own", 2),
            (("shared", "own", "fine-tuned"), "gap", "own", 2)]  # does a view that memorised weigh less? (session 16)
DEFAULT = (("shared", "own", "fine-tuned"), "tail", "own", 2)  # personalisation "tuned" (weighted: the first two, shared units, odds 1)
DEFAULT_CELLS = ["natural", "home clusters", "Dirichlet α=0.5", "Dirichlet α=0.1", "home clusters, 500 train rows",
                 "natural, 250 train rows", "Dirichlet α=0.1, 500 train rows", "home clusters, 250 train rows",
                 "Dirichlet α=0.5, 250 train rows", "natural, 1000 train rows"]


def view_scores(data: str, cell_name: str, seed: int, tune_rounds: tuple[int, ...] = (),
                tune_only: tuple[str, ...] = (), known: dict | None = None,
                base: FedCLConfig = FedCLConfig()) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """node -> view -> scores of its rows of each of ``PARTS``, trained under ``base``'s keys; the views
    ``known`` (the same form) already holds are kept, not trained again."""
    config = base.updated(data=data, seed=seed)
    cell = next(c for c in cells(data, False) if c.name == cell_name)
    splits = cell.make_splits(config)
    federation = run_federation({s.name: scaled_training_rows(s) for s in splits}, config)
    shared = trained_encoder(config, federation.arrays, splits[0].train.shape[1])
    recipe = config.updated(data="", aggregation="fedavg", personalisation="off")
    out = {}
    for s in splits:
        encoders = {"shared": lambda: shared, "own": lambda: own_encoder(s, config),
                    "fine-tuned": lambda: tuned_encoder(s, config, shared),
                    **{f"fine-tuned {r}": lambda r=r: tuned_encoder(s, config.updated(rounds=r), shared)
                       for r in tune_rounds},
                    **{f"{layer}-tuned": lambda layer=layer: tuned_encoder(s, config, shared, train_only=layer)
                       for layer in tune_only}}
        # benign-only probes: validation rows with each column shuffled apart, or with every cell scaled
        rng = np.random.default_rng(seed)
        shuffled = np.column_stack([rng.permutation(column) for column in s.val.T])
        jittered = s.val * np.exp(rng.normal(0.0, 0.5, s.val.shape))
        out[s.name] = dict((known or {}).get(s.name, {}))
        for view, encoder in encoders.items():
            if view in out[s.name]:
                continue
            detector = make_detector(encoder(), recipe).fit(s.train, X_val=s.val)
            out[s.name][view] = {part: detector.decision_function(x) for part, x in
                                 zip(PARTS, (s.val, s.test_benign, s.attack, s.train, shuffled, jittered))}
    return out


def view_weight(scores: dict[str, np.ndarray], how: str) -> float:
    """A view's weight in a weighted mean, from benign rows only. *tail*: the default's
    (:func:`fedcl.model._combine.tail_weight`); *gap*: that over (median validation score / median
    training score)², so a view that memorised its training rows weighs less; *probe*: how far its AUROC
    of validation rows against the same rows with every column shuffled apart sits above chance."""
    if how == "tail":
        return tail_weight(scores["val"])
    if how == "gap":
        # training scores are relative distances, never ~0 on a node's own rows (each sits among its references)
        return tail_weight(scores["val"]) / (np.median(scores["val"]) / max(np.median(scores["train"]), 1e-12)) ** 2
    if how == "probe":
        y = np.r_[np.zeros(len(scores["val"])), np.ones(len(scores["shuffled"]))]
        return max(roc_auc_score(y, np.r_[scores["val"], scores["shuffled"]]) - 0.5, 1e-12)
    return 1.0


def label(views: tuple[str, ...], how: str, unit: str, odds: float) -> str:
    """How a variant is printed: ``tail(shared, own)``, with its unit and odds where not the default's."""
    extra = [f"in {unit} units"] if unit != "shared" and len(views) > 1 else []
    extra += [f"own odds {odds:g}"] if odds != 1 else []
    return f"{how}({', '.join(views)})" + (f" [{', '.join(extra)}]" if extra else "")


def metrics(nodes: dict, views: tuple[str, ...], how: str, unit_view: str, odds: float) -> tuple[float, float, float]:
    """Pooled AUROC, FPR@TPR0.99 and worst node AUROC of one combination of views, in ``unit_view``'s
    units: their mean, max or a mean weighted per node (:func:`view_weight`, the own view's ×
    ``odds``); *floor*: the tail-weighted mean, never below the own view (whose alarms a poisoned
    shared model then cannot lower, as under max)."""
    labels, scores, node_auroc = [], [], []
    for node in nodes.values():
        unit = {v: np.quantile(node[unit_view]["val"], SCALE_QUANTILE)
                / max(np.quantile(node[v]["val"], SCALE_QUANTILE), 1e-12) for v in views}
        weight = np.array([view_weight(node[v], "tail" if how == "floor" else how) * (odds if v == "own" else 1)
                           for v in views])[:, None]
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
    parser.add_argument("--seed", type=int, action="append", help="repeat; default 0, the development seed")
    parser.add_argument("--scores", type=Path, help="pickle of the view scores, read if it exists, else written")
    parser.add_argument("--tune-rounds", type=int, action="append", default=[],
                        help="also a fine-tuned view trained for this many rounds only (repeat)")
    parser.add_argument("--tune-only", choices=("head", "input"), action="append", default=[],
                        help="also the federation's encoder fine-tuned in this layer only (repeat)")
    parser.add_argument("--config", type=Path, help="TOML file of config keys to train under (default: the defaults)")
    parser.add_argument("--own-from", type=Path, help="pickle of view scores whose own view replaces this run's")
    args = parser.parse_args()
    base = load_config(args.config) if args.config else FedCLConfig()
    tune_rounds = tuple(dict.fromkeys(args.tune_rounds))
    tune_only = tuple(dict.fromkeys(args.tune_only))
    added = [f"fine-tuned {r}" for r in tune_rounds] + [f"{layer}-tuned" for layer in tune_only]
    variants = VARIANTS + [v for view in added for v in (((view,), "mean", view, 1),
                                                         (("shared", "own", view), "tail", "own", 2))]
    torch.set_num_threads(1)
    kept = pickle.loads(args.scores.read_bytes()) if args.scores and args.scores.exists() else {}
    own_from = pickle.loads(args.own_from.read_bytes()) if args.own_from else None

    results: dict[tuple, dict[tuple, list]] = {}  # variant -> (network, cell) -> per seed
    for data in args.data:
        network = data.rstrip("/").split("/")[-1]
        names = {c.name for c in cells(data, False)}
        for cell in [c for c in (args.cell or DEFAULT_CELLS) if c in names]:
            for seed in args.seed or [0]:
                key = (network, cell, seed)
                if key not in kept or any(view not in n for n in kept[key].values() for view in added):
                    kept[key] = view_scores(data, cell, seed, tune_rounds, tune_only, kept.get(key), base)
                    if args.scores:
                        args.scores.write_bytes(pickle.dumps(kept))
                nodes = kept[key] if own_from is None else {
                    name: views | {"own": own_from[key][name]["own"]} for name, views in kept[key].items()}
                for variant in variants:
                    m = metrics(nodes, *variant)
                    results.setdefault(variant, {}).setdefault((network, cell), []).append(m)
                    print(f"{network} | {cell} | seed {seed} | {label(*variant)}: "
                          f"AUROC {m[0]:.4f}, FPR@TPR0.99 {m[1]:.4f}, worst node {m[2]:.4f}", flush=True)
    cell_means = {k: {cell: np.mean(ms, axis=0) for cell, ms in v.items()} for k, v in results.items()}
    own_alone = cell_means[(("own",), "mean", "own", 1)]
    print(f"means over {len(own_alone)} cells (each the mean over its seeds); FPR@TPR0.99 per network; in how many "
          "cells the variant is at least the own view alone (our encoder, local only) on both pooled figures:")
    means = {k: np.mean(list(v.values()), axis=0) for k, v in cell_means.items()}
    for variant, m in means.items():
        networks = dict.fromkeys(network for network, _ in own_alone)
        per_network = ", ".join(f"{n} {np.mean([c[1] for (cn, _), c in cell_means[variant].items() if cn == n]):.4f}"
                                for n in networks)
        no_regret = sum(c[0] >= own_alone[cell][0] and c[1] <= own_alone[cell][1]
                        for cell, c in cell_means[variant].items())
        print(f"  {label(*variant)}: AUROC {m[0]:.4f}, FPR@TPR0.99 {m[1]:.4f} ({per_network}), worst node {m[2]:.4f}, "
              f"≥ own alone in {no_regret} of {len(own_alone)}")
    best = max((k for k in means if k != DEFAULT), key=lambda k: means[k][0])
    print(f"default {label(*DEFAULT)}: AUROC {means[DEFAULT][0]:.4f}, FPR@TPR0.99 {means[DEFAULT][1]:.4f}; "
          f"best other {label(*best)}: AUROC {means[best][0]:.4f}, FPR@TPR0.99 {means[best][1]:.4f}")


if __name__ == "__main__":
    main()
