"""report.md: what was run, how well it detected, with the ROC and training plots beside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.eval.metrics import METRIC_KEYS
from fedcl.eval.plots import plot_history, plot_roc
from fedcl.rundir import REPORT_FILE, SCORES_FILE, read_history


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
    return (f"Privacy: record-level differential privacy, ε = {spent} spent per node (target "
            f"{privacy['target_epsilon']:g}), δ = {privacy['delta']:g}, {privacy['accountant']} (docs/privacy.md).")


def write_report(run_dir: Path, config: FedCLConfig, summary: dict) -> Path:
    """Write report.md, roc.png and training.png into ``run_dir``; ``summary`` as in metrics.json (its
    ``privacy`` under differential privacy)."""
    plot_roc(pd.read_csv(run_dir / SCORES_FILE), run_dir / "roc.png")
    history = read_history(run_dir)
    if history:
        plot_history(history, run_dir / "training.png")
    privacy = summary.get("privacy")
    counts = summary["counts"]
    text = f"""# fedcl run report

Data: `{config.data}` ({len(summary['nodes'])} nodes; held-out test rows: {counts['benign_test']:,} benign,
{counts['attack']:,} attack). Leakage guard: **{config.leakage_guard}**. Aggregation: **{config.aggregation}**,
{config.rounds} rounds × {config.local_epochs} local epoch(s), τ = {config.temperature},
λ = {config.consistency_weight}, embedding size {config.embedding_dim}, node normalisation
{'on' if config.node_normalisation else 'off'}, seed {config.seed}.
{_privacy_line(privacy)}

Thresholds: per node, the {1 - config.fpr_target:.2%} quantile of that node's benign validation scores
(no attack row is seen before testing). Scores: mean distance, in the node's embedding space, to the
{config.n_neighbors} nearest of {config.n_references} k-means centroids of the node's benign training
embeddings (to its nearest training embeddings when the node has no more rows than centroids).

## Pooled

{_table({'pooled': summary['pooled']}, 'set')}

![ROC](roc.png)

## Per node

{_table(summary['nodes'], 'node')}

## Per attack family (each against all benign test rows)

{_table(summary['families'], 'family') if summary['families'] else 'No attack rows in the test data.'}

## Training

![training](training.png)

Files: `config.toml` (resolved config), `history.jsonl` (per round), `model.pt` (weights-only),
`scores.csv` (every test row's score), `metrics.json`.
"""
    path = run_dir / REPORT_FILE
    path.write_text(text)
    return path
