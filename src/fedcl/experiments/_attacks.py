"""`fedcl experiment attacks`: the honest nodes' AUROC vs the number of faulty or malicious nodes, per server rule.

Per seed, the nodes are put in a random order; the first k are the bad ones (so the bad set for k
contains the one for k − 1), and every figure is measured on the same honest nodes: those never
bad at any k asked for. A *noisy* node is honest about heavily corrupted data; the others send a
forged update (:mod:`fedcl.federated.behaviours`): naive ones from their own update, adaptive ones
(alie, ipm, ipm-large, min-max, min-sum, mimic) knowing the rule and every honest update of the round,
and reporting a typical node's statistics. *Targeted* nodes try to make one attack family score as
benign everywhere: they train on their benign rows plus rows of that family (a backdoor by data
poisoning, rows amounting to half their benign training rows) and send that update at the median
honest norm, the most the guarded rule's clip lets through, with a typical node's statistics; every
run reports that family's recall at the honest nodes' thresholds. *Dropout*: every node misses each
round with probability 0.3, nobody attacks. The detectors' own-view encoders (personalisation) are
trained once per node and seed (:func:`fedcl.pipeline.own_encoder` keeps them: no attacker touches them)
and shared by every run of that seed; under ``tuned`` each run fine-tunes its own federation's encoder,
attacked or not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.config import AGGREGATIONS, FedCLConfig
from fedcl.data import NodeSplit, scaled_gaussian_noise
from fedcl.errors import ConfigError
from fedcl.experiments._methods import Method, shrink
from fedcl.experiments._resume import ResultsFile, claim_folder
from fedcl.experiments._runner import mean_std, run_methods
from fedcl.federated import run_federation
from fedcl.federated.behaviours import ALIASES as BEHAVIOUR_ALIASES
from fedcl.federated.behaviours import BEHAVIOURS, boost_within_clip
from fedcl.pipeline import fit_node_detectors, load_splits, scaled_training_rows, summarise, trained_encoder
from fedcl.seeding import node_rng

RULES = AGGREGATIONS
NOISY, TARGETED, DROPOUT_RUN, CLEAN = "noisy", "targeted", "dropout", "none"
ATTACK_SCENARIOS = (NOISY, *BEHAVIOURS, TARGETED, DROPOUT_RUN)  # every --behaviours name, in report order
ALIASES = {"noisy node": NOISY, **BEHAVIOUR_ALIASES}  # names of the first results -> names
BAD_NODES = (0, 1, 2, 3)
QUICK_BAD_NODES = (0, 1)  # --quick keeps 3 nodes: one may attack, two are measured
NOISY_STD = 3.0  # a noisy node's training rows: noise of 3 of its own standard deviations on every feature
DROPOUT = 0.3
POISON_SHARE = 0.5  # a targeted attacker adds family rows amounting to half its benign training rows

RESULTS = "results.csv"
KEY = ["data", "rule", "behaviour", "bad_nodes", "measured_nodes", "seed"]
COLUMNS = [*KEY, "dropout", "auroc", "fpr_at_tpr99", "recall", "fpr", "worst_node_auroc", "target_family",
           "target_recall", "seconds"]


@dataclass(frozen=True)
class Grid:
    """What one `fedcl experiment attacks` call runs: every rule × behaviour × bad-node count × seed."""

    rules: tuple[str, ...]
    behaviours: tuple[str, ...]
    bad_nodes: tuple[int, ...]
    seeds: tuple[int, ...]


def check_attack_grid(rules: Sequence[str], behaviours: Sequence[str], bad_nodes: Sequence[int] | None,
               seeds: Sequence[int], quick: bool) -> Grid:
    """The grid asked for, with names resolved; ConfigError on anything that cannot run."""
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise ConfigError(f"unknown rule(s) {unknown}; choose from {', '.join(RULES)}")
    names = [ALIASES.get(b, b) for b in behaviours]
    unknown = [b for b in names if b not in ATTACK_SCENARIOS]
    if unknown or not names:
        raise ConfigError(f"unknown behaviour(s) {unknown}; choose from {', '.join(ATTACK_SCENARIOS)}")
    counts = tuple(QUICK_BAD_NODES if quick else BAD_NODES) if bad_nodes is None else tuple(bad_nodes)
    if not counts or any(c < 0 for c in counts):
        raise ConfigError(f"bad-node counts must be non-negative integers, got {list(counts)}")
    if not seeds:
        raise ConfigError("need at least one seed")
    return Grid(tuple(dict.fromkeys(rules)), tuple(dict.fromkeys(names)), tuple(sorted(set(counts))), tuple(seeds))


def check_node_count(grid: Grid, n_nodes: int, quick: bool) -> None:
    """ConfigError unless every count leaves at least one honest node to measure."""
    if max(grid.bad_nodes) >= n_nodes:
        raise ConfigError(f"{max(grid.bad_nodes)} bad nodes leave no honest node to measure: the data have "
                          f"{n_nodes} node(s){' (--quick keeps 3)' if quick else ''}")


def default_target_family(splits: list[NodeSplit]) -> str:
    """The attack family present on the most nodes, then with the most rows (ties: first by name)."""
    families = np.concatenate([s.attack_family for s in splits]).astype(str)
    if len(families) == 0:
        raise ConfigError("the data have no attack rows: nothing to measure an attack against")
    names, rows = np.unique(families, return_counts=True)
    nodes = [sum(name in set(s.attack_family.astype(str)) for s in splits) for name in names]
    return str(names[np.lexsort((-rows, -np.asarray(nodes)))[0]])


def check_target_family(splits: list[NodeSplit], family: str | None) -> str:
    """``family``, or the default one; ConfigError if no node has rows of it."""
    if family is None:
        return default_target_family(splits)
    present = sorted(set(np.concatenate([s.attack_family for s in splits]).astype(str)))
    if family not in present:
        raise ConfigError(f"no attack rows of family {family!r}; the data have {', '.join(present)}")
    return family


def _poisoned(split: NodeSplit, family: str, seed: int) -> NodeSplit:
    """The split with rows of ``family`` from its own attack rows added to its benign training rows."""
    rows = split.attack[split.attack_family.astype(str) == family]
    take = min(len(rows), round(POISON_SHARE * len(split.train)))
    picked = node_rng(seed, split.name, 4243).choice(len(rows), take, replace=False)
    return replace(split, train=np.vstack([split.train, rows[np.sort(picked)]]))


def _training_rows(split: NodeSplit, behaviour: str, bad: bool, seed: int, family: str):
    """What a node trains on: its benign rows, with noise for a noisy node, with poison for a targeted one."""
    if bad and behaviour == NOISY:
        split = replace(split, train=scaled_gaussian_noise(split.train, NOISY_STD, node_rng(seed, split.name, 4242)))
    elif bad and behaviour == TARGETED:
        split = _poisoned(split, family, seed)
    return scaled_training_rows(split)


def _forged(behaviour: str):
    """The behaviour a bad node runs in the federation (None: it sends what it computed)."""
    if behaviour == TARGETED:
        return boost_within_clip
    return BEHAVIOURS[behaviour] if behaviour in BEHAVIOURS else None


def _attacked(rule: str, behaviour: str, n_bad: int, max_bad: int, family: str) -> Callable:
    def fit(splits: list[NodeSplit], config: FedCLConfig):
        cfg = config.updated(aggregation=rule)
        order = np.random.default_rng([config.seed, 4242]).permutation(len(splits))
        bad = {splits[i].name for i in order[:n_bad]}
        honest = [splits[i] for i in sorted(order[max_bad:])]
        rows = {s.name: _training_rows(s, behaviour, s.name in bad, config.seed, family) for s in splits}
        forged = _forged(behaviour)
        behaviours = {name: forged for name in bad} if forged else {}
        result = run_federation(rows, cfg, behaviours=behaviours, dropout=DROPOUT if behaviour == DROPOUT_RUN else 0.0)
        encoder = trained_encoder(cfg, result.arrays, splits[0].train.shape[1])
        return fit_node_detectors(encoder, honest, cfg), honest
    return fit


def run_one(rule: str, behaviour: str, n_bad: int, max_bad: int, family: str, splits: list[NodeSplit],
            config: FedCLConfig, quick: bool) -> dict:
    """One federation with ``n_bad`` nodes behaving so, measured on the honest nodes: the figures of a row."""
    fit = _attacked(rule, behaviour, n_bad, max_bad, family)
    method = Method(f"{rule} | {behaviour} | {n_bad}", "attack", fit)
    rows, scores = run_methods([method], config, [config.seed], quick, progress=lambda _: None,
                               make_splits=lambda _: splits)
    pooled = rows.iloc[0]
    target = summarise(scores[method.name])["families"].get(family, {})
    return {"dropout": DROPOUT if behaviour == DROPOUT_RUN else 0.0,
            **{k: pooled[k] for k in ("auroc", "fpr_at_tpr99", "recall", "fpr", "worst_node_auroc", "seconds")},
            "target_family": family, "target_recall": target.get("recall")}


def _clean_row(results: ResultsFile, key: dict) -> dict | None:
    """A k = 0 run already written under another behaviour (every behaviour's k = 0 is the same run)."""
    rows = results.rows()
    same = rows[(rows["bad_nodes"] == 0) & (rows["behaviour"] != DROPOUT_RUN) & (rows["data"] == key["data"])
                & (rows["rule"] == key["rule"]) & (rows["measured_nodes"] == key["measured_nodes"])
                & (rows["seed"] == key["seed"])]
    return None if same.empty else same.iloc[0].to_dict()


def _figure(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.4f}"


def _runs(grid: Grid):
    """(rule, behaviour, bad nodes) of one seed, in the order they run."""
    for rule in grid.rules:
        for behaviour in grid.behaviours:
            for n_bad in (0,) if behaviour == DROPOUT_RUN else grid.bad_nodes:
                yield rule, behaviour, n_bad


def attacks_report(config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
                   progress: Callable[[str], None] = print, rules: Sequence[str] = RULES,
                   behaviours: Sequence[str] = ATTACK_SCENARIOS, bad_nodes: Sequence[int] | None = None,
                   target_family: str | None = None) -> Path:
    """Run every (rule, behaviour, bad-node count, seed) not yet in ``out/results.csv``, appending as it
    goes; then the PNG and the Markdown report.

    Parameters
    ----------
    config : FedCLConfig
        Settings of every run; ``data`` names the data folder.
    seeds : sequence of int
    quick : bool
        3 nodes, a few hundred rows each, 3 rounds (for CI).
    out : Path
        Result folder: ``results.csv``, ``attacks.md``, ``attacks.png``.
    rules : sequence of str
        Server rules (``--aggregation`` names).
    behaviours : sequence of str
        Names from :data:`ATTACK_SCENARIOS` (or the display names of :data:`ALIASES`).
    bad_nodes : sequence of int, optional
        Numbers of bad nodes; default 0–3 (0–1 with ``quick``). 0 is the clean run every behaviour shares.
    target_family : str, optional
        The family the targeted attack hides (default: :func:`default_target_family`).
    """
    grid = check_attack_grid(rules, behaviours, bad_nodes, seeds, quick)
    first = load_splits(config.updated(seed=grid.seeds[0]))
    # The nodes the runs will see; their attack families as seed 0's slice has them, whichever seeds run, so
    # that every run into one folder hides the same family (--quick slices rows by seed)
    seen = shrink(first, 0) if quick else first
    check_node_count(grid, len(seen), quick)
    family = check_target_family(seen, target_family)
    claim_folder(out / RESULTS, config, quick, sets=("aggregation",))  # each rule's
    results = ResultsFile(out / RESULTS, KEY, COLUMNS)
    measured = len(seen) - max(grid.bad_nodes)
    for seed in grid.seeds:
        cfg = config.updated(seed=seed)
        done = results.done()
        todo = [run for run in _runs(grid) if (cfg.data, *run, measured, seed) not in done]
        if not todo:
            continue
        splits = first if seed == grid.seeds[0] else load_splits(cfg)  # read once per seed, shared by every run
        for rule, behaviour, n_bad in todo:
            key = {"data": cfg.data, "rule": rule, "behaviour": behaviour, "bad_nodes": n_bad,
                   "measured_nodes": measured, "seed": seed}
            clean = n_bad == 0 and behaviour != DROPOUT_RUN  # every behaviour's 0 is one run
            row = _clean_row(results, key) if clean else None
            if row is None:
                row = run_one(rule, CLEAN if clean else behaviour, n_bad, max(grid.bad_nodes), family, splits, cfg,
                              quick)
            results.append({**row, **key})
            progress(f"seed {seed} | {rule} | {behaviour} | {n_bad} bad: AUROC {row['auroc']:.4f}, "
                     f"{family} recall {_figure(row['target_recall'])}")
    return write_attacks_report(out, config, grid.seeds, quick)


def _loss_table(rows: pd.DataFrame, clean: pd.Series) -> str:
    """Worst AUROC loss against each rule's own clean run, over behaviours, at each bad-node count."""
    attacked = rows.groupby(["rule", "behaviour", "bad_nodes"])["auroc"].mean().reset_index()
    attacked["loss"] = clean.reindex(attacked["rule"]).to_numpy() - attacked["auroc"]
    counts = sorted(c for c in attacked["bad_nodes"].unique() if c > 0)
    if not counts or clean.empty:
        return "(needs runs with 0 and with some bad nodes)"
    lines = ["| rule | clean AUROC | " + " | ".join(f"worst loss, {c} bad" for c in counts) + " | worst at max |",
             "|---" * (len(counts) + 3) + "|"]
    for rule in pd.unique(rows["rule"]):
        df = attacked[(attacked["rule"] == rule) & (attacked["bad_nodes"] > 0)]
        worst = [df[df["bad_nodes"] == c]["loss"].max() for c in counts]
        at_max = df[df["bad_nodes"] == counts[-1]].sort_values("loss").iloc[-1]["behaviour"]
        lines.append(f"| {rule} | {clean.get(rule, np.nan):.4f} | " + " | ".join(f"{w:+.4f}" for w in worst)
                     + f" | {at_max} |")
    return "\n".join(lines)


def _pivot_table(rows: pd.DataFrame, value: str) -> str:
    """Markdown: mean ``value`` of each rule (lines) under each behaviour (columns)."""
    table = rows.pivot_table(index="rule", columns="behaviour", values=value, aggfunc="mean", sort=False)
    lines = ["| rule | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    lines += [f"| {rule} | " + " | ".join(f"{v:.4f}" for v in r) + " |" for rule, r in table.iterrows()]
    return "\n".join(lines)


def _targeted_table(rows: pd.DataFrame) -> str:
    """Markdown: the targeted family's recall and the pooled AUROC of each rule at each bad-node count."""
    targeted = rows[rows["behaviour"] == TARGETED]
    at = targeted.groupby(["rule", "bad_nodes"], sort=False)[["target_recall", "auroc"]].mean()
    counts = sorted(targeted["bad_nodes"].unique())
    lines = ["| rule | " + " | ".join(f"recall, {c} bad (AUROC)" for c in counts) + " |",
             "|---" * (len(counts) + 1) + "|"]
    for rule, df in at.groupby(level="rule", sort=False):
        df = df.droplevel("rule")
        lines.append(f"| {rule} | " + " | ".join(
            f"{_figure(df.loc[c, 'target_recall'])} ({df.loc[c, 'auroc']:.4f})" if c in df.index else ""
            for c in counts) + " |")
    return "\n".join(lines)


def _dropout_table(rows: pd.DataFrame) -> str:
    lines = ["| rule | AUROC with 30 % dropout | worst node |", "|---|---|---|"]
    lines += [f"| {rule} | {mean_std(df['auroc'])} | {df['worst_node_auroc'].mean():.4f} |"
              for rule, df in rows.groupby("rule", sort=False)]
    return "\n".join(lines)


def write_attacks_report(out: Path, config: FedCLConfig, seeds: Sequence[int], quick: bool) -> Path:
    """attacks.png and attacks.md from ``out/results.csv``."""
    from fedcl.eval.plots import plot_curves
    from fedcl.experiments._drivers import protocol_text

    rows = pd.read_csv(out / RESULTS)
    attacked = rows[rows["behaviour"] != DROPOUT_RUN].sort_values("bad_nodes", kind="stable")  # x axis: 0, 1, 2, …
    sections = []
    if len(attacked):
        plot_curves(attacked, "bad_nodes", ["auroc", "worst_node_auroc", "target_recall"], out / "attacks.png",
                    line="rule", panel="behaviour", title="Honest nodes vs bad nodes (mean ± std over seeds)")
        clean = attacked[attacked["bad_nodes"] == 0].groupby("rule")["auroc"].mean()
        shown = min(2, int(attacked["bad_nodes"].max()))  # the target's case; --quick goes up to 1
        sections += [
            "AUROC loss against the same rule without bad nodes (positive = worse; the worst over behaviours):\n\n"
            + _loss_table(attacked, clean),
            f"Pooled AUROC of the honest nodes with {shown} bad nodes:\n\n"
            + _pivot_table(attacked[attacked["bad_nodes"] == shown], "auroc"),
            "![attacks](attacks.png)"]
    if (rows["behaviour"] == TARGETED).any():
        family = rows.loc[rows["behaviour"] == TARGETED, "target_family"].iloc[0]
        sections.append(f"Targeted attack on `{family}`: its recall at the honest nodes' thresholds (pooled AUROC):"
                        f"\n\n{_targeted_table(rows)}")
    if (rows["behaviour"] == DROPOUT_RUN).any():
        sections.append("Dropouts (no bad node):\n\n" + _dropout_table(rows[rows["behaviour"] == DROPOUT_RUN]))
    report = out / "attacks.md"
    report.write_text(f"# Faulty and malicious nodes\n\nData: `{config.data}`\n\n{protocol_text(config, seeds, quick)}"
                      f"\n\n{__doc__.split(chr(10), 2)[2].strip()}\n\n" + "\n\n".join(sections)
                      + f"\n\nEvery run: [{RESULTS}]({RESULTS}).\n")
    return report
