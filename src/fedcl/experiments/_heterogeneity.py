"""Heterogeneity: the same rows dealt to the nodes in different ways, three methods on each deal.

Every partition but "natural" pools the rows of all nodes in this one process and deals them
again (:func:`fedcl.data.dirichlet_partition`, :func:`fedcl.data.quantity_skew_partition`). That
is a simulation for experiments only: no real federation can pool its nodes' rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.data import NodeData, NodeSplit, detect_layout, dirichlet_partition, quantity_skew_partition, read_dataset
from fedcl.experiments._drivers import fresh_results, protocol_text
from fedcl.experiments._methods import Method, federated_autoencoder_method, fedcl_method
from fedcl.experiments._runner import mean_std, run_methods
from fedcl.pipeline import split_nodes

ALPHAS = (100.0, 1.0, 0.5, 0.1)
QUANTITY_RATIO = 10.0
# A node trains, thresholds and tests a detector on its benign rows: the partitioners' default
# of 3 rows would give it one row of each.
MIN_BENIGN_ROWS = 100
# Column -> heading in the report.
METRICS = {"auroc": "AUROC", "fpr_at_tpr99": "FPR@TPR0.99", "worst_node_auroc": "worst-node AUROC"}

GROUPS_TEXT = {
    "source": "each row's group is the device it came from (one input node per device): label skew",
    "clusters": ("the data has no device labels, so a row's group is one of 8 k-means clusters of the benign "
                 "rows: feature skew; attack rows are dealt evenly at random"),
}

PARTITIONS_TEXT = """Partitions, redrawn for each seed with that seed: *natural* is the data folders as they are.
Every other partition pools all rows in this one process and deals them to as many nodes as the folder
has (a simulation: no real federation can pool rows). *Dirichlet α*: each group's benign rows (and
held-out benign test rows) are split over the nodes by shares ~ Dirichlet(α); {groups}. Small α gives
nodes dominated by a few groups, α = 100 near-identical mixes. *quantity {ratio:g}×*: rows dealt IID,
node sizes geometric, largest / smallest ≈ {ratio:g}. A dealt node gets at least {min_rows} benign rows
(moved from the largest node). Worst node: the lowest per-node AUROC (nodes whose test rows hold one
class only are skipped)."""


@dataclass(frozen=True)
class Partition:
    """One way to deal the rows to nodes.

    ``deal(nodes, seed)`` returns the dealt nodes; None keeps the folders as they are.
    ``alpha`` is NaN unless the deal is a Dirichlet one.
    """

    label: str
    alpha: float = math.nan
    deal: Callable[[list[NodeData], int], list[NodeData]] | None = field(default=None, repr=False)

    def make_splits(self, config: FedCLConfig) -> list[NodeSplit]:
        """The split nodes of one seed (``config.seed`` draws the deal and the splits)."""
        nodes = read_dataset(config.data, config.layout, config.schema)
        return split_nodes(nodes if self.deal is None else self.deal(nodes, config.seed), config)


def _dirichlet(nodes: list[NodeData], seed: int, alpha: float, groups: str) -> list[NodeData]:
    return dirichlet_partition(nodes, len(nodes), alpha, seed, groups=groups, min_benign=MIN_BENIGN_ROWS)


def _quantity(nodes: list[NodeData], seed: int) -> list[NodeData]:
    return quantity_skew_partition(nodes, len(nodes), QUANTITY_RATIO, seed, min_benign=MIN_BENIGN_ROWS)


def partitions(groups: str) -> list[Partition]:
    """Natural, Dirichlet(α) for each of ALPHAS over ``groups``, then quantity skew: the x axis, in order."""
    return [Partition("natural"),
            *[Partition(f"Dirichlet α={a:g}", a, partial(_dirichlet, alpha=a, groups=groups)) for a in ALPHAS],
            Partition(f"quantity {QUANTITY_RATIO:g}×", deal=_quantity)]


def dirichlet_groups(config: FedCLConfig) -> str:
    """"source" where nodes are devices (uci, kaggle layouts), else unlabelled "clusters"."""
    layout = detect_layout(config.data) if config.layout == "auto" else config.layout
    return "source" if layout in ("uci", "kaggle") else "clusters"


def heterogeneity_methods() -> list[Method]:
    return [Method("fedcl (ours)", "ours", fedcl_method()),
            Method("fedcl, FedAvg weights", "ablation", fedcl_method(aggregation="fedavg")),
            # The plain dynamic rule trusts what nodes report: does the guard cost honest but skewed nodes?
            Method("fedcl, plain dynamic weights", "ablation", fedcl_method(aggregation="dynamic")),
            Method("federated autoencoder, FedAvg", "unsupervised", federated_autoencoder_method)]


def _table(rows: pd.DataFrame) -> str:
    """Markdown: mean ± std over seeds per (partition, method), in the order they ran."""
    lines = ["| partition | method | " + " | ".join(METRICS.values()) + " | seeds |",
             "|---" * (len(METRICS) + 3) + "|"]
    for (label, method), df in rows.groupby(["partition", "method"], sort=False):
        cells = " | ".join(mean_std(df[m]) for m in METRICS)
        lines.append(f"| {label} | {method} | {cells} | {len(df)} |")
    return "\n".join(lines)


def heterogeneity(config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
                  progress: Callable[[str], None] = print) -> Path:
    """fedcl (guarded, plain dynamic and FedAvg weights) and the federated autoencoder on each partition.

    Parameters
    ----------
    config : FedCLConfig
        Settings of every run; ``config.data`` is the data folder.
    seeds : sequence of int
        One run per seed and (partition, method); the seed also draws the partition.
    quick : bool
        Small slices and 3 rounds (see :func:`fedcl.experiments.shrink`).
    out : Path
        Result folder; gets ``heterogeneity.csv``, ``heterogeneity.png`` and ``heterogeneity.md``.
    progress : callable, default=print
        Called with one line per finished run.

    Returns
    -------
    report : Path
        ``out / "heterogeneity.md"``.
    """
    groups = dirichlet_groups(config)
    results = fresh_results(out, "heterogeneity.csv", ("partition", "method", "seed"))
    frames = []
    for p in partitions(groups):
        rows, _ = run_methods(heterogeneity_methods(), config, seeds, quick,
                              lambda line: progress(f"{p.label}: {line}"), make_splits=p.make_splits,
                              on_row=lambda row, p=p: results.append({**row, "partition": p.label, "alpha": p.alpha}))
        frames.append(rows.assign(partition=p.label, alpha=p.alpha))
    pd.concat(frames, ignore_index=True).to_csv(results.path, index=False)
    return write_heterogeneity_report(out, config, seeds, quick)


def write_heterogeneity_report(out: Path, config: FedCLConfig, seeds: Sequence[int], quick: bool) -> Path:
    """PNG and Markdown from ``out/heterogeneity.csv``."""
    from fedcl.eval.plots import plot_curves

    groups = dirichlet_groups(config)
    rows = pd.read_csv(out / "heterogeneity.csv")
    plot_curves(rows, "partition", list(METRICS), out / "heterogeneity.png",
                title="Pooled AUROC, FPR@TPR0.99 and worst-node AUROC per partition (mean ± std over seeds)")
    text = PARTITIONS_TEXT.format(groups=GROUPS_TEXT[groups], ratio=QUANTITY_RATIO, min_rows=MIN_BENIGN_ROWS)
    report = out / "heterogeneity.md"
    report.write_text(f"# Heterogeneity: the same rows dealt to nodes in different ways\n\nData: `{config.data}`\n\n"
                      f"{protocol_text(config, seeds, quick)}\n\n{text}\n\n{_table(rows)}\n\n"
                      f"![heterogeneity](heterogeneity.png)\n\nEvery run: [heterogeneity.csv](heterogeneity.csv).\n")
    return report
