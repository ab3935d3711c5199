"""`fedcl experiment corruption`: AUROC as the data get incomplete, noisy or contaminated.

Every corruption hits every node's rows at training *and* test time (train, validation, benign test
and attack rows alike), except contamination, which mixes attack rows into the unlabelled benign
training and validation rows and takes them out of the attack rows that are tested. Runs are
appended to ``results.csv`` one by one, so an interrupted run resumes where it stopped; the level-0
run is shared by every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.data import (
    ROW_SETS,
    NodeSplit,
    contaminate,
    missing_completely_at_random,
    missing_feature_group,
    missing_row_blocks,
    scaled_gaussian_noise,
)
from fedcl.errors import ConfigError
from fedcl.experiments._methods import Method, fedcl_method, federated_autoencoder_method, per_node_method
from fedcl.experiments._resume import ResultsFile, claim_folder
from fedcl.experiments._runner import mean_std, run_methods
from fedcl.pipeline import load_splits
from fedcl.seeding import node_rng

MISSING_GROUP = "HpHp"  # the widest stream (35 columns): a node whose extractor skips socket-level streams



@dataclass(frozen=True)
class Corruption:
    """One kind of corruption: its report title, the levels it runs by default and what a level means."""

    title: str
    levels: tuple[float, ...]
    meaning: str
    fraction: bool = True  # a level is a share, in [0, 1); otherwise a noise std, >= 0


CORRUPTIONS = {  # --kinds name -> corruption
    "mcar": Corruption("missing cells (MCAR)", (0.1, 0.3, 0.5), "share of cells missing"),
    "missing-streams": Corruption(f"{MISSING_GROUP} streams missing on some nodes", (0.1, 0.3, 0.5),
                                  "share of nodes without the streams"),
    "row-blocks": Corruption("missing row blocks", (0.1, 0.3, 0.5),
                             "share of rows, in blocks of 50, that lose one stream group"),
    "noise": Corruption("Gaussian noise", (0.1, 0.5, 1.0), "noise std in the node's scaled units", fraction=False),
    "contamination": Corruption("attack rows in benign training", (0.01, 0.03, 0.05),
                                "share of training rows that are attacks"),
}
ALIASES = {c.title: name for name, c in CORRUPTIONS.items()}  # the titles of the first results still work
RESULTS = "results.csv"
KEY = ["data", "method", "kind", "level", "seed"]
COLUMNS = [*KEY, "method_kind", "auroc", "fpr_at_tpr99", "accuracy", "recall", "fpr", "f1", "auprc",
           "worst_node_auroc", "seconds"]


def _each_row_set(split: NodeSplit, corrupt: Callable[[np.ndarray], np.ndarray]) -> NodeSplit:
    return replace(split, **{k: corrupt(getattr(split, k)) if len(getattr(split, k)) else getattr(split, k)
                             for k in ROW_SETS})


def _contaminated(split: NodeSplit, fraction: float, rng: np.random.Generator) -> NodeSplit:
    train, attack, taken_train = contaminate(split.train, split.attack, fraction, rng)
    keep = np.setdiff1d(np.arange(len(split.attack)), taken_train)
    val, attack, taken_val = contaminate(split.val, attack, fraction, rng)
    keep = np.delete(keep, taken_val)
    return replace(split, train=train, val=val, attack=attack, attack_family=split.attack_family[keep])


def kind_name(kind: str) -> str:
    """The --kinds name of a corruption given by name or title; ConfigError if there is none."""
    name = ALIASES.get(kind, kind)
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")
    return name


def check_level(kind: str, level: float) -> None:
    """ConfigError unless ``level`` is a share in [0, 1) (a std >= 0 for noise)."""
    if CORRUPTIONS[kind].fraction and not 0 <= level < 1:
        raise ConfigError(f"a {kind} level is a share in [0, 1), got {level!r}")
    if not CORRUPTIONS[kind].fraction and not (np.isfinite(level) and level >= 0):
        raise ConfigError(f"a {kind} level is a noise std >= 0, got {level!r}")


def corrupt(splits: list[NodeSplit], kind: str, level: float, seed: int) -> list[NodeSplit]:
    """The splits with one corruption (a name or title of :data:`CORRUPTIONS`) applied at ``level``
    (0 = unchanged); seeded per node."""
    kind = kind_name(kind)
    check_level(kind, level)
    if level == 0:
        return splits
    rng = np.random.default_rng([seed, 7919])
    if kind == "missing-streams":
        hit = set(rng.permutation(len(splits))[:max(1, round(level * len(splits)))])
        return [_each_row_set(s, lambda x: missing_feature_group(x, MISSING_GROUP)) if i in hit else s
                for i, s in enumerate(splits)]
    out = []
    for s in splits:
        rng = node_rng(seed, s.name, 7919)
        if kind == "mcar":
            out.append(_each_row_set(s, lambda x: missing_completely_at_random(x, level, rng)))
        elif kind == "row-blocks":
            out.append(_each_row_set(s, lambda x: missing_row_blocks(x, level, rng)))
        elif kind == "noise":
            out.append(_each_row_set(s, lambda x: scaled_gaussian_noise(x, level, rng, reference=s.train)))
        else:
            out.append(_contaminated(s, level, rng))
    return out


def corruption_methods() -> list[Method]:
    from fedcl.baselines import AutoencoderDetector, KNNDetector

    return [
        Method("fedcl (ours)", "ours", fedcl_method()),
        Method("fedcl with the missing-value mask input", "ablation", fedcl_method(missing_mask=True)),
        Method("federated autoencoder, FedAvg", "unsupervised", federated_autoencoder_method),
        Method("autoencoder per node (Meidan et al.)", "unsupervised",
               per_node_method(lambda c: AutoencoderDetector(random_state=c.seed, fpr_target=c.fpr_target))),
        Method("k-NN per node", "unsupervised", per_node_method(lambda c: KNNDetector(fpr_target=c.fpr_target))),
    ]


def corruption_plan(kinds: Sequence[str], levels: Sequence[float] | None) -> list[tuple[str, float]]:
    """(kind, level) in the order they run: each kind's levels (default: 0 and its own), checked."""
    if not kinds:
        raise ConfigError(f"no corruption kind given; choose from {', '.join(CORRUPTIONS)}")
    plan = []
    for kind in dict.fromkeys(kind_name(k) for k in kinds):
        for level in (0.0, *CORRUPTIONS[kind].levels) if levels is None else levels:
            check_level(kind, float(level))
            plan.append((kind, float(level)))
    return list(dict.fromkeys(plan))


def _clean_row(results: ResultsFile, key: dict) -> dict | None:
    """A level-0 run of the same method and seed already written under another kind (the same run)."""
    rows = results.rows()
    same = rows[(rows["level"] == 0) & (rows["data"] == key["data"]) & (rows["method"] == key["method"])
                & (rows["seed"] == key["seed"])]
    return None if same.empty else same.iloc[0].to_dict()


def run_one(method: Method, splits: list[NodeSplit], config: FedCLConfig, quick: bool) -> dict:
    """One method on one corrupted deal of the splits: the figures of a row."""
    rows, _ = run_methods([method], config, [config.seed], quick, progress=lambda _: None, make_splits=lambda _: splits)
    return {"method_kind": method.kind, **{k: rows.iloc[0][k] for k in COLUMNS if k in rows.columns and k not in KEY}}


def corruption(config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
               progress: Callable[[str], None] = print, kinds: Sequence[str] = tuple(CORRUPTIONS),
               levels: Sequence[float] | None = None, methods: Sequence[Method] | None = None) -> Path:
    """Run every (kind, level, method, seed) not yet in ``out/results.csv``, appending as it goes; then
    the PNG and the Markdown report.

    Parameters
    ----------
    config : FedCLConfig
        Settings of every run; ``data`` names the data folder.
    seeds : sequence of int
    quick : bool
        3 nodes, a few hundred rows each, 3 rounds (for CI).
    out : Path
        Result folder: ``results.csv``, ``corruption.md``, ``corruption.png``.
    kinds : sequence of str
        Names of :data:`CORRUPTIONS` (or their titles).
    levels : sequence of float, optional
        The levels every kind runs at (default: 0 and the kind's own levels); 0 is the clean run
        every kind shares.
    methods : sequence of Method, optional
        Default: :func:`corruption_methods`, fedcl's row named ``fedcl (ours)``.
    """
    plan = corruption_plan(kinds, levels)
    if not seeds:
        raise ConfigError("need at least one seed")
    methods = corruption_methods() if methods is None else methods
    claim_folder(out / RESULTS, config, quick)
    results = ResultsFile(out / RESULTS, KEY, COLUMNS)
    for seed in seeds:
        cfg = config.updated(seed=seed)
        done = results.done()
        base = None  # the seed's splits, read only if some run is left
        for kind, level in plan:
            todo = [m for m in methods if (cfg.data, m.name, kind, level, seed) not in done]
            splits = None  # read and corrupted once per (kind, level, seed), shared by every method
            for method in todo:
                key = {"data": cfg.data, "method": method.name, "kind": kind, "level": level, "seed": seed}
                row = _clean_row(results, key) if level == 0 else None
                if row is None:
                    base = base or load_splits(cfg)
                    splits = splits or corrupt(base, kind, level, seed)
                    row = run_one(method, splits, cfg, quick)
                results.append({**row, **key})
                progress(f"seed {seed} | {kind} at {level:g} | {method.name}: AUROC {row['auroc']:.4f}")
    return write_corruption_report(out, config, seeds, quick)


def level_table(rows: pd.DataFrame) -> str:
    """Markdown: one line per method, one column per level; cells "AUROC ± std (worst node)"."""
    levels = sorted(rows["level"].unique())
    lines = ["| method | " + " | ".join(f"{level:g}" for level in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for method, df in rows.groupby("method", sort=False):
        by_level = dict(tuple(df.groupby("level")))
        lines.append(f"| {method} | " + " | ".join(
            f"{mean_std(by_level[v]['auroc'])} ({by_level[v]['worst_node_auroc'].mean():.4f})" if v in by_level else ""
            for v in levels) + " |")
    return "\n".join(lines)


def write_corruption_report(out: Path, config: FedCLConfig, seeds: Sequence[int], quick: bool) -> Path:
    """corruption.png and corruption.md from ``out/results.csv``."""
    from fedcl.eval.plots import plot_curves
    from fedcl.experiments._drivers import protocol_text

    rows = pd.read_csv(out / RESULTS).sort_values("level", kind="stable")
    plot_curves(rows.assign(corruption=rows["kind"].map(lambda k: CORRUPTIONS[k].title)), "level",
                ["auroc", "worst_node_auroc"], out / "corruption.png", panel="corruption",
                title="AUROC vs corruption level (mean ± std over seeds)")
    sections = [f"## {c.title} (`{kind}`)\n\nlevel = {c.meaning}; cells: pooled AUROC mean ± std (worst node's "
                f"AUROC)\n\n" + level_table(rows[rows["kind"] == kind])
                for kind, c in CORRUPTIONS.items() if (rows["kind"] == kind).any()]
    report = out / "corruption.md"
    report.write_text(f"# Detection under incomplete, noisy and contaminated data\n\nData: `{config.data}`\n\n"
                      f"{protocol_text(config, seeds, quick)}\n\n{__doc__.split(chr(10), 2)[2].strip()}\n\n"
                      "![AUROC vs corruption](corruption.png)\n\n"
                      + "\n\n".join(sections) + f"\n\nEvery run: [{RESULTS}]({RESULTS}).\n")
    return report
