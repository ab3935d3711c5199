"""`fedcl experiment attacks`: AUROC vs the number of faulty or malicious nodes, per server rule.

Per seed, the nodes are put in a random order; the first k are the bad ones (so the bad set for k
contains the one for k − 1), and every figure is measured on the same honest nodes: those never
bad at any k. A "noisy" node is honest about heavily corrupted data; the others send a forged
update (:mod:`fedcl.federated.behaviours`). Dropout rows: every node misses each round with
probability 0.3, nobody attacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.config import AGGREGATIONS, FedCLConfig
from fedcl.data import NodeSplit, scaled_gaussian_noise
from fedcl.errors import ConfigError
from fedcl.experiments._methods import Method
from fedcl.experiments._runner import run_methods
from fedcl.federated import run_federation
from fedcl.federated.behaviours import BEHAVIOURS
from fedcl.pipeline import fit_node_detectors, scaled_training_rows, trained_encoder
from fedcl.seeding import node_rng

AGGREGATORS = AGGREGATIONS
ATTACKS = ("noisy node", *BEHAVIOURS)
MALICIOUS = (0, 1, 2, 3)
QUICK_MALICIOUS = (0, 1)  # --quick keeps 3 nodes: one may attack, two are measured
NOISY_STD = 3.0  # a noisy node's training rows: noise of 3 of its own standard deviations on every feature
DROPOUT = 0.3


def _attacked(aggregation: str, attack: str, n_bad: int, max_bad: int, dropout: float = 0.0) -> Callable:
    def fit(splits: list[NodeSplit], config: FedCLConfig):
        cfg = config.updated(aggregation=aggregation)
        order = np.random.default_rng([config.seed, 4242]).permutation(len(splits))
        bad = {splits[i].name for i in order[:n_bad]}
        honest = [splits[i] for i in sorted(order[max_bad:])]
        rows = {}
        for s in splits:
            if attack == "noisy node" and s.name in bad:
                rng = node_rng(config.seed, s.name, 4242)
                s = replace(s, train=scaled_gaussian_noise(s.train, NOISY_STD, rng))
            rows[s.name] = scaled_training_rows(s)
        behaviours = {} if attack == "noisy node" else {name: BEHAVIOURS[attack] for name in bad}
        result = run_federation(rows, cfg, behaviours=behaviours, dropout=dropout)
        encoder = trained_encoder(cfg, result.arrays, splits[0].train.shape[1])
        return fit_node_detectors(encoder, honest, cfg), honest
    return fit


def attack_rows(config: FedCLConfig, seeds: Sequence[int], quick: bool, aggregators: Sequence[str] = AGGREGATORS,
                attacks: Sequence[str] = ATTACKS, progress: Callable[[str], None] = print) -> pd.DataFrame:
    """One row per (aggregator, attack, malicious count, seed); the k = 0 run is shared by every attack."""
    counts = QUICK_MALICIOUS if quick else MALICIOUS
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        raise ConfigError(f"unknown attack(s) {sorted(unknown)}; choose from {', '.join(ATTACKS)}")
    scenarios = {}  # method name -> (aggregator, attack, malicious nodes, dropout)
    methods = []

    def add(aggregation, attack, n_bad, dropout=0.0):
        name = f"{aggregation} | {attack} | {n_bad}" + (f" | dropout {dropout:g}" if dropout else "")
        scenarios[name] = (aggregation, attack, n_bad, dropout)
        methods.append(Method(name, "attack", _attacked(aggregation, attack, n_bad, max(counts), dropout)))

    for aggregation in aggregators:
        add(aggregation, "none", 0)
        add(aggregation, "none", 0, DROPOUT)
        for attack in attacks:
            for n_bad in counts[1:]:
                add(aggregation, attack, n_bad)
    rows, _ = run_methods(methods, config, seeds, quick, progress)
    parts = pd.DataFrame([scenarios[m] for m in rows["method"]], columns=["aggregator", "attack", "malicious", "dropout"])
    rows = pd.concat([parts, rows.drop(columns=["method", "kind"])], axis=1)
    # The clean run is every attack's k = 0 point.
    clean = rows[(rows["attack"] == "none") & (rows["dropout"] == 0)]
    return pd.concat([rows[rows["attack"] != "none"], rows[rows["dropout"] > 0]]
                     + [clean.assign(attack=a) for a in attacks], ignore_index=True)


def _loss_table(rows: pd.DataFrame) -> str:
    """Worst AUROC loss against each rule's own clean run, over attacks, at each malicious count."""
    clean = rows[(rows["malicious"] == 0) & (rows["dropout"] == 0)].groupby("aggregator")["auroc"].mean()
    attacked = rows[rows["dropout"] == 0].groupby(["aggregator", "attack", "malicious"])["auroc"].mean().reset_index()
    attacked["loss"] = clean.reindex(attacked["aggregator"]).to_numpy() - attacked["auroc"]
    counts = sorted(c for c in attacked["malicious"].unique() if c > 0)
    lines = ["| rule | clean AUROC | " + " | ".join(f"worst loss, {c} bad" for c in counts) + " | worst attack at max |",
             "|---" * (len(counts) + 3) + "|"]
    for rule in pd.unique(rows["aggregator"]):
        df = attacked[attacked["aggregator"] == rule]
        worst = [df[df["malicious"] == c]["loss"].max() for c in counts]
        at_max = df[df["malicious"] == counts[-1]].sort_values("loss").iloc[-1]["attack"]
        lines.append(f"| {rule} | {clean[rule]:.4f} | " + " | ".join(f"{w:+.4f}" for w in worst) + f" | {at_max} |")
    return "\n".join(lines)


def _auroc_table(rows: pd.DataFrame, malicious: int) -> str:
    """Markdown: mean AUROC of each rule (lines) under each attack (columns) at one malicious count."""
    at = rows[(rows["dropout"] == 0) & (rows["malicious"] == malicious)]
    table = at.pivot_table(index="aggregator", columns="attack", values="auroc", aggfunc="mean", sort=False)
    lines = ["| rule | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    lines += [f"| {rule} | " + " | ".join(f"{v:.4f}" for v in r) + " |" for rule, r in table.iterrows()]
    return "\n".join(lines)


def attacks_report(config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
                   progress: Callable[[str], None] = print, rules: Sequence[str] = AGGREGATORS) -> Path:
    """AUROC vs malicious nodes for each rule and attack: CSV, PNG and a Markdown report."""
    unknown = set(rules) - set(AGGREGATORS)
    if unknown:
        raise ConfigError(f"unknown rule(s) {sorted(unknown)}; choose from {', '.join(AGGREGATORS)}")
    out.mkdir(parents=True, exist_ok=True)
    attack_rows(config, seeds, quick, rules, progress=progress).to_csv(out / "attacks.csv", index=False)
    return write_attacks_report(out, config, seeds, quick)


def write_attacks_report(out: Path, config: FedCLConfig, seeds: Sequence[int], quick: bool) -> Path:
    """PNG and Markdown from ``out/attacks.csv``."""
    from fedcl.eval.plots import plot_curves
    from fedcl.experiments._drivers import protocol_text

    rows = pd.read_csv(out / "attacks.csv")
    attacked = rows[rows["dropout"] == 0].sort_values("malicious", kind="stable")  # x axis: 0, 1, 2, 3
    plot_curves(attacked, "malicious", ["auroc", "worst_node_auroc"], out / "attacks.png", line="aggregator",
                panel="attack", title="Honest nodes' AUROC vs malicious nodes (mean ± std over seeds)")
    dropout = rows[rows["dropout"] > 0].groupby("aggregator", sort=False)[["auroc", "worst_node_auroc"]].agg(["mean", "std"])
    drop_lines = ["| rule | AUROC with 30 % dropout | worst node |", "|---|---|---|"] + [
        f"| {rule} | {r[('auroc', 'mean')]:.4f} ± {r[('auroc', 'std')]:.4f} | {r[('worst_node_auroc', 'mean')]:.4f} |"
        for rule, r in dropout.iterrows()]
    shown = min(2, int(rows["malicious"].max()))  # the target's case; --quick goes up to 1
    report = out / "attacks.md"
    report.write_text(
        f"# Faulty and malicious nodes\n\nData: `{config.data}`\n\n{protocol_text(config, seeds, quick)}\n\n"
        f"{__doc__.split(chr(10), 2)[2].strip()}\n\nAUROC loss against the same rule without attackers "
        f"(positive = worse; the worst over attacks):\n\n{_loss_table(rows)}\n\n"
        f"Pooled AUROC of the honest nodes with {shown} of the nodes bad:\n\n{_auroc_table(rows, shown)}\n\n"
        "![attacks](attacks.png)\n\n"
        f"Dropouts (no attackers):\n\n" + "\n".join(drop_lines) + "\n\nEvery run: [attacks.csv](attacks.csv).\n")
    return report
