"""Would nodes pool better on one calibrated scale? Per-node recalibrations of the default's scores.

    .venv/bin/python benchmarks/pooled_units.py SCORES.pkl [SCORES.pkl ...]

Reads the view scores ``benchmarks/personalisation_views.py --scores FILE`` kept, combines each node's
three views as the default does (``tuned``), then maps each node's combined scores by a monotone
function fitted on its benign validation scores alone: divided by a quantile (50th, 90th, or the 99th,
near the threshold), centred on the median, standardised by the median and the 90th percentile, or the
log of the score so standardised (each view so before combining, in *per view*). A node ranks its own
rows as before (each node's AUROC is unchanged); what changes is how the nodes' scores line up when
pooled, which pooled AUROC and FPR@TPR0.99 measure. Prints, per variant, the means over the cells (each
cell's mean over its seeds) with FPR@TPR0.99 per network, and the simulated network's cells apart; the
last line compares the default's units with the best recalibration. ``--nodes CELL`` first prints, for
that cell's runs, each node's benign validation median, 90th and 99th percentile and its attacks' 1st
percentile, in the default's units: where a node's hardest attacks sit among the nodes' benign rows.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from fedcl.eval.metrics import fpr_at_tpr
from fedcl.model._combine import OWN_VIEW_ODDS, tail_weight
from fedcl.model._personal import SCALE_QUANTILE

VIEWS = ("shared", "own", "fine-tuned")
PARTS = ("val", "benign", "attack")


def view_weights(node: dict) -> np.ndarray:
    return np.array([tail_weight(node[v]["val"]) * (OWN_VIEW_ODDS["tuned"] if v == "own" else 1) for v in VIEWS])


def combined(node: dict) -> dict[str, np.ndarray]:
    """The default's score (each view in the own view's units, tail-weighted mean) of each part."""
    q = {v: np.quantile(node[v]["val"], SCALE_QUANTILE) for v in VIEWS}
    w = view_weights(node)
    return {p: sum(wv * node[v][p] * q["own"] / q[v] for wv, v in zip(w, VIEWS)) / w.sum() for p in PARTS}


def log_standardised(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    log = {p: np.log(np.maximum(x, 1e-12)) for p, x in scores.items()}
    centre, high = np.quantile(log["val"], [0.5, SCALE_QUANTILE])
    return {p: (x - centre) / max(high - centre, 1e-6) for p, x in log.items()}


def recalibrated(node: dict, variant: str) -> dict[str, np.ndarray]:
    if variant == "log-standardised, per view":
        w = view_weights(node)
        per_view = [log_standardised(node[v]) for v in VIEWS]
        return {p: sum(wv * s[p] for wv, s in zip(w, per_view)) / w.sum() for p in PARTS}
    scores = combined(node)
    if variant == "log-standardised":
        return log_standardised(scores)
    centre, q90 = np.quantile(scores["val"], [0.5, SCALE_QUANTILE])
    f = {"the default's units": lambda x: x,
         "÷ median": lambda x: x / centre,
         "÷ 90th percentile": lambda x: x / q90,
         "÷ 99th percentile": lambda x: x / np.quantile(scores["val"], 0.99),
         "− median": lambda x: x - centre,
         "standardised": lambda x: (x - centre) / max(q90 - centre, 1e-12)}[variant]
    return {p: f(x) for p, x in scores.items()}


VARIANTS = ("the default's units", "÷ median", "÷ 90th percentile", "÷ 99th percentile", "− median", "standardised",
            "log-standardised", "log-standardised, per view")


def pooled(nodes: dict, variant: str) -> tuple[float, float]:
    labels, scores = [], []
    for node in nodes.values():
        s = recalibrated(node, variant)
        labels.append(np.r_[np.zeros(len(s["benign"])), np.ones(len(s["attack"]))])
        scores.append(np.r_[s["benign"], s["attack"]])
    y, s = np.concatenate(labels), np.concatenate(scores)
    return roc_auc_score(y, s), fpr_at_tpr(y, s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", nargs="+", type=Path, help="pickles of personalisation_views.py --scores")
    parser.add_argument("--nodes", metavar="CELL", help="first print each node's benign quantiles and hardest attacks")
    args = parser.parse_args()
    runs = {}
    for path in args.scores:
        runs |= pickle.loads(path.read_bytes())  # (network, cell, seed) -> node -> view -> part -> scores
    for (network, cell, seed), nodes in runs.items():
        if cell == args.nodes:
            for name, node in nodes.items():
                s = combined(node)
                print(f"{network} | {cell} | seed {seed} | {name}: benign validation median / 90th / 99th "
                      f"{' / '.join(f'{q:.3f}' for q in np.quantile(s['val'], [0.5, SCALE_QUANTILE, 0.99]))}, "
                      f"attacks' 1st percentile {np.quantile(s['attack'], 0.01):.3f}")
    means = {}
    for variant in VARIANTS:
        per_cell: dict[tuple, list] = {}
        for (network, cell, _), nodes in runs.items():
            per_cell.setdefault((network, cell), []).append(pooled(nodes, variant))
        cells = {key: np.mean(values, axis=0) for key, values in per_cell.items()}
        means[variant] = np.mean(list(cells.values()), axis=0)
        networks = dict.fromkeys(network for network, _ in cells)
        per_network = ", ".join(f"{n} {np.mean([m[1] for (cn, _), m in cells.items() if cn == n]):.4f}" for n in networks)
        simulated = "; ".join(f"{cell} {m[0]:.4f} / {m[1]:.4f}" for (network, cell), m in cells.items()
                              if network.startswith("simulated"))
        print(f"{variant}: AUROC {means[variant][0]:.4f}, FPR@TPR0.99 {means[variant][1]:.4f} ({per_network})"
              + (f"; simulated network: {simulated}" if simulated else ""), flush=True)
    default, *others = VARIANTS
    best = max(others, key=lambda v: means[v][0])
    print(f"the default's units: AUROC {means[default][0]:.4f}, FPR@TPR0.99 {means[default][1]:.4f}; best "
          f"recalibration ({best}): AUROC {means[best][0]:.4f}, FPR@TPR0.99 {means[best][1]:.4f}")


if __name__ == "__main__":
    main()
