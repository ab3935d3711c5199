"""Run methods over seeds on the same splits; write CSV first, then tables and plots from it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fedcl.config import FedCLConfig
from fedcl.data import NodeSplit
from fedcl.experiments._methods import Method, shrink
from fedcl.pipeline import load_splits, score_nodes, summarise

QUICK_ROUNDS = 3
# Columns of the comparison table: the study's four, then the ones a detector is judged on.
TABLE_METRICS = ("accuracy", "auroc", "f1", "recall", "auprc", "fpr", "fpr_at_tpr99")


@contextmanager
def one_torch_thread():
    """Small models over many runs: one thread each is steadier than two fighting for 2 cores
    (measured: a 10-node federation took 3.6 s on 1 thread, 17.6 s on 2 while another job ran)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@one_torch_thread()
def run_methods(methods: Sequence[Method], config: FedCLConfig, seeds: Sequence[int], quick: bool,
                progress: Callable[[str], None] = print,
                make_splits: Callable[[FedCLConfig], list[NodeSplit]] = load_splits,
                on_row: Callable[[dict], None] | None = None,
                ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row per (method, seed) with pooled metrics, and the first seed's test scores per method.

    ``make_splits(config)`` gives the nodes of one seed (default: the data folder as it is); ``on_row``
    gets each row as its run ends.
    """
    rows, first_scores = [], {}
    for seed in seeds:
        cfg = config.updated(seed=seed, rounds=QUICK_ROUNDS if quick else None)
        splits = make_splits(cfg)
        if quick:
            splits = shrink(splits, seed)
        for method in methods:
            start = time.perf_counter()
            detectors, test_splits = method.fit(splits, cfg)
            scores = score_nodes(detectors, test_splits)
            summary = summarise(scores)
            node_auroc = [m["auroc"] for m in summary["nodes"].values() if m["auroc"] is not None]
            rows.append({"method": method.name, "kind": method.kind, "seed": seed, **summary["pooled"],
                         "worst_node_auroc": min(node_auroc) if node_auroc else None,
                         "seconds": time.perf_counter() - start})
            first_scores.setdefault(method.name, scores)
            if on_row is not None:
                on_row(rows[-1])
            progress(f"seed {seed}: {method.name}: AUROC {summary['pooled']['auroc']:.4f}")
    return pd.DataFrame(rows), first_scores


def mean_std(values: pd.Series) -> str:
    """A table cell: mean ± sample std over seeds (± 0 for one seed)."""
    return f"{values.mean():.4f} ± {values.std(ddof=1) if values.count() > 1 else 0:.4f}"


def mean_std_table(rows: pd.DataFrame, metrics: Sequence[str] = TABLE_METRICS) -> str:
    """Markdown: mean ± std over seeds, one line per method, in the order the methods ran."""
    grouped = rows.groupby(["method", "kind"], sort=False)
    header = "| method | kind | " + " | ".join(metrics) + " | seeds | s/run |"
    lines = [header, "|---" * (len(metrics) + 4) + "|"]
    for (method, kind), df in grouped:
        cells = [mean_std(df[m]) for m in metrics]
        lines.append(f"| {method} | {kind} | " + " | ".join(cells) + f" | {len(df)} | {df['seconds'].mean():.1f} |")
    return "\n".join(lines)


def save_scores(scores: dict[str, pd.DataFrame], path: Path) -> None:
    frames = [df.assign(method=name) for name, df in scores.items()]
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)


def sweep(param: str, values: Sequence[float], config: FedCLConfig, seeds: Sequence[int], quick: bool,
          progress: Callable[[str], None] = print, on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """fedcl with one hyperparameter varied; every other setting as in ``config``; ``on_row`` gets each row
    (with the parameter's value) as its run ends."""
    from fedcl.experiments._methods import fedcl_method

    rows = []
    for value in values:
        method = Method(f"{param}={value:g}", "ours", fedcl_method(**{param: float(value)}))
        with_value = None if on_row is None else (lambda row, v=float(value): on_row({**row, param: v}))
        df, _ = run_methods([method], config, seeds, quick, progress, on_row=with_value)
        rows.append(df.assign(**{param: float(value)}))
    return pd.concat(rows, ignore_index=True)


def log_grid(low: float, high: float, points: int) -> list[float]:
    return [float(v) for v in np.geomspace(low, high, points)]

