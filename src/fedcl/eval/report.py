"""report.md: what was run, how well it detected, with the ROC and training plots beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.eval.metrics import METRIC_KEYS, histogram_roc
from fedcl.eval.plots import plot_history, plot_roc, plot_roc_curves
from fedcl.model._detector import LOCAL_WEIGHT
from fedcl.rundir import REPORT_FILE, ROC_PLOT, SCORES_FILE, TRAINING_PLOT, read_history


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _table(rows: dict[str, dict], first: str) -> str:
    lines = [f"| {first} | " + " | ".join(METRIC_KEYS) + " |", "|---" * (len(METRIC_KEYS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_cell(m[k]) for k in METRIC_KEYS) + " |" for name, m in rows.items()]
    return "\n".join(lines)


def _privacy_line(privacy: dict | None) -> str:
    if privacy is None:
        return "Privacy: no differential privacy (dp_epsilon = inf)."
    spent = "–" if privacy["epsilon"] is None else f"{privacy['epsilon']:.4g}"
    return (f"Privacy: {privacy.get('level', 'record')}-level differential privacy, ε = {spent} spent per node (target "
            f"{privacy['target_epsilon']:g}), δ = {privacy['delta']:g}, {privacy['accountant']} (docs/privacy.md).")


def _small_node_epochs(config: FedCLConfig) -> str:
    if not config.min_rows_per_round or config.differential_privacy:
        return ""
    return f" (or ⌈{config.min_rows_per_round:,} / n⌉ for a node of n training rows, if more)"


def _relative(config: FedCLConfig) -> str:
    if not config.relative_distance:
        return ""
    return (", in units of how far apart those centroids sit (the node's median spacing plus "
            f"{LOCAL_WEIGHT:g} × the local one)")


def _acceptance(config: FedCLConfig) -> str:
    if not config.acceptance_margin:
        return ""
    who = "another node's federation view" if config.acceptance_quorum == 1 else \
        f"{config.acceptance_quorum} other nodes' federation views"
    return (f" A node accepts a row that {who} score(s) below {config.acceptance_margin:g} × their threshold "
            "(`acceptance_margin`: each node's federation-view detector was released to the others).")


def _centroid_rows(config: FedCLConfig) -> str:
    if config.rows_per_reference == 1:
        return ""
    return f", and at most one per {config.rows_per_reference} training rows"


def _rows(summary: dict) -> str:
    """Each node's rows, and the nodes whose figures rest on few benign rows (``summary`` of ``evaluate``)."""
    if not summary.get("rows"):
        return ""
    lines = ["| node | training | validation | benign test | attack |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['training']:,} | {r['validation']:,} | {r['benign_test']:,} | {r['attack']:,} |"
              for name, r in summary["rows"].items()]
    return "\n\nRows per node:\n\n" + "\n".join(lines) + _few_rows(summary)


def _few_rows(summary: dict) -> str:
    few = "".join(f"\n- {line}" for line in summary.get("few_rows", []))
    return f"\n\nFigures that rest on few rows:{few}" if few else ""


def _run_lines(config: FedCLConfig, summary: dict) -> str:
    """What was run: the nodes and row counts of ``summary``, the settings of ``config``, the privacy spent."""
    counts = summary["counts"]
    return f"""({len(summary['nodes'])} nodes; held-out test rows: {counts['benign_test']:,} benign,
{counts['attack']:,} attack). Leakage guard: **{config.leakage_guard}**. Aggregation: **{config.aggregation}**,
{config.rounds} rounds × {config.local_epochs} local epoch(s){_small_node_epochs(config)}, τ = {config.temperature},
λ = {config.consistency_weight}, embedding size {config.embedding_dim}, node normalisation
{'on' if config.node_normalisation else 'off'}, seed {config.seed}.
{_privacy_line(summary.get("privacy"))}"""


def write_report(run_dir: Path, config: FedCLConfig, summary: dict) -> Path:
    """Write report.md, roc.png and training.png into ``run_dir``; ``summary`` as in metrics.json (its
    ``privacy`` under differential privacy)."""
    plot_roc(pd.read_csv(run_dir / SCORES_FILE), run_dir / ROC_PLOT)
    history = read_history(run_dir)
    # node-level DP keeps who was sampled secret: its history holds the ε spent only, nothing to plot
    plotted = bool(history) and "nodes" in history[0]
    if plotted:
        plot_history(history, run_dir / TRAINING_PLOT)
    training = "![training](training.png)" if plotted else \
        "Node-level differential privacy: the history holds the ε spent per round only (docs/privacy.md)."
    text = f"""# fedcl run report

Data: `{config.data}` {_run_lines(config, summary)}

Thresholds: per node, the {1 - config.fpr_target:.2%} quantile of that node's benign validation scores
(no attack row is seen before testing). Scores: mean distance, in the node's embedding space, to the
{config.n_neighbors} nearest of at most {config.n_references} k-means centroids of the node's benign training
embeddings{_centroid_rows(config)} (to its nearest training embeddings when the node has no more rows than
centroids){_relative(config)}.{_acceptance(config)}

## Pooled

{_table({'pooled': summary['pooled']}, 'set')}

![ROC](roc.png)

## Per node

{_table(summary['nodes'], 'node')}{_rows(summary)}

## Per attack family (each against all benign test rows)

{_table(summary['families'], 'family') if summary['families'] else 'No attack rows in the test data.'}

## Training

{training}

Files: `config.toml` (resolved config), `history.jsonl` (per round), `model.pt` (weights-only),
`scores.csv` (every test row's score), `metrics.json`.
"""
    path = run_dir / REPORT_FILE
    path.write_text(text)
    return path


def write_fleet_report(run_dir: Path, config: FedCLConfig, summary: dict,
                       histograms: dict[str, dict[str, list[int]]]) -> Path:
    """Write fleet.md, fleet_roc.png and training.png into ``run_dir``: the federated evaluation of a Flower
    run (``summary`` as in fleet.json; ``histograms``: each node's benign and attack score histograms)."""
    nodes = {name: histogram_roc(h["benign"], h["attack"]) for name, h in histograms.items()
             if sum(h["attack"]) and sum(h["benign"])}  # a curve needs both classes, as in plot_roc
    totals = [np.sum([h[k] for h in histograms.values()], axis=0) for k in ("benign", "attack")]
    pooled = histogram_roc(*totals) if histograms and totals[0].sum() and totals[1].sum() else None
    plot_roc_curves(nodes, pooled, run_dir / "fleet_roc.png", "ROC on the nodes' held-out rows (score histograms)")
    history = read_history(run_dir)
    if history:
        plot_history(history, run_dir / TRAINING_PLOT)
    rows = "\n".join(f"| {name} | {n['partition_id']} | {n['benign_test']:,} | {n['attack']:,} | "
                      f"{', '.join(map(str, n['rounds_excluded'])) or 'none'} |" for name, n in summary["nodes"].items())
    missing = "\n" + "\n".join(f"- {line}" for line in summary["not_evaluated"]) if summary["not_evaluated"] \
        else "every node answered."
    text = f"""# fedcl fleet report (federated evaluation)

Each node fitted its detector on its own rows and scored its held-out rows; only metrics, counts and
score histograms left the nodes (docs/privacy.md). {_run_lines(config, summary)}

Thresholds: per node, the {1 - config.fpr_target:.2%} quantile of that node's benign validation scores.
Per-node metrics are exact. Pooled and per-family AUROC, AUPRC and FPR@TPR0.99 come from score histograms
(100 bins per decade: ties within a bin count half); accuracy, precision, recall, F1 and FPR at the
nodes' thresholds from exact counts.

## Pooled

{_table({'pooled': summary['pooled'], 'mean over nodes': summary['mean_over_nodes']}, 'set')
 if summary['pooled'] else 'No node was evaluated.'}

![ROC](fleet_roc.png)

## Per node

{_table(summary['nodes'], 'node')}

| node | partition | benign test rows | attack rows | rounds set aside by the server |
|---|---|---|---|---|
{rows}{_few_rows(summary)}

Not evaluated: {missing}

## Per attack family (each against all benign test rows)

{_table(summary['families'], 'family') if summary['families'] else 'No attack rows in the test data.'}

## Training

![training](training.png)

Files: `config.toml`, `history.jsonl` (per round, with each node's weight and exclusions), `model.pt`,
`fleet.json` (this report's figures).
"""
    path = run_dir / "fleet.md"
    path.write_text(text)
    return path
