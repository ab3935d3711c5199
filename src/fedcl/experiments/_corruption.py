"""`fedcl experiment corruption`: AUROC as the data get incomplete, noisy or contaminated.

Every corruption hits every node's rows at training *and* test time (train, validation, benign test
and attack rows alike), except contamination, which mixes attack rows into the unlabelled benign
training and validation rows and takes them out of the attack rows that are tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
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
from fedcl.experiments._runner import mean_std, run_methods
from fedcl.pipeline import load_splits
from fedcl.seeding import node_rng

MISSING_GROUP = "HpHp"  # the widest stream (35 columns): a node whose extractor skips socket-level streams

# kind -> (levels, what a level means)
CORRUPTIONS = {
    "missing cells (MCAR)": ((0.1, 0.3, 0.5), "share of cells missing"),
    f"{MISSING_GROUP} streams missing on some nodes": ((0.1, 0.3, 0.5), "share of nodes without the streams"),
    "missing row blocks": ((0.1, 0.3, 0.5), "share of rows, in blocks of 50, that lose one stream group"),
    "Gaussian noise": ((0.1, 0.5, 1.0), "noise std in the node's scaled units"),
    "attack rows in benign training": ((0.01, 0.03, 0.05), "share of training rows that are attacks"),
}


def _each_row_set(split: NodeSplit, corrupt: Callable[[np.ndarray], np.ndarray]) -> NodeSplit:
    return replace(split, **{k: corrupt(getattr(split, k)) if len(getattr(split, k)) else getattr(split, k)
                             for k in ROW_SETS})


def _contaminated(split: NodeSplit, fraction: float, rng: np.random.Generator) -> NodeSplit:
    train, attack, taken_train = contaminate(split.train, split.attack, fraction, rng)
    keep = np.setdiff1d(np.arange(len(split.attack)), taken_train)
    val, attack, taken_val = contaminate(split.val, attack, fraction, rng)
    keep = np.delete(keep, taken_val)
    return replace(split, train=train, val=val, attack=attack, attack_family=split.attack_family[keep])


def corrupt(splits: list[NodeSplit], kind: str, level: float, seed: int) -> list[NodeSplit]:
    """The splits with one corruption applied at ``level`` (0 = unchanged); seeded per node."""
    if kind not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {kind!r}; choose one of {', '.join(CORRUPTIONS)}")
    if level == 0:
        return splits
    rng = np.random.default_rng([seed, 7919])
    if kind.endswith("missing on some nodes"):
        hit = set(rng.permutation(len(splits))[:max(1, round(level * len(splits)))])
        return [_each_row_set(s, lambda x: missing_feature_group(x, MISSING_GROUP)) if i in hit else s
                for i, s in enumerate(splits)]
    out = []
    for s in splits:
        rng = node_rng(seed, s.name, 7919)
        if kind == "missing cells (MCAR)":
            out.append(_each_row_set(s, lambda x: missing_completely_at_random(x, level, rng)))
        elif kind == "missing row blocks":
            out.append(_each_row_set(s, lambda x: missing_row_blocks(x, level, rng)))
        elif kind == "Gaussian noise":
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


def corruption_rows(config: FedCLConfig, seeds: Sequence[int], quick: bool, kinds: Sequence[str] = tuple(CORRUPTIONS),
                    progress: Callable[[str], None] = print, methods: Sequence[Method] | None = None) -> pd.DataFrame:
    """One row per (corruption, level, method, seed); the clean run (level 0) is shared by every kind."""
    methods = corruption_methods() if methods is None else methods
    clean, _ = run_methods(methods, config, seeds, quick, progress)
    frames = [clean.assign(corruption=kind, level=0.0) for kind in kinds]
    for kind in kinds:
        for level in CORRUPTIONS[kind][0]:
            progress(f"{kind} at {level:g}")
            df, _ = run_methods(methods, config, seeds, quick, progress,
                                make_splits=lambda cfg: corrupt(load_splits(cfg), kind, level, cfg.seed))
            frames.append(df.assign(corruption=kind, level=level))
    return pd.concat(frames, ignore_index=True)


def level_table(rows: pd.DataFrame) -> str:
    """Markdown: one line per method, one column per level; cells "AUROC ± std (worst node)"."""
    levels = sorted(rows["level"].unique())
    lines = ["| method | " + " | ".join(f"{level:g}" for level in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for method, df in rows.groupby("method", sort=False):
        by_level = dict(tuple(df.groupby("level")))
        lines.append(f"| {method} | " + " | ".join(
            f"{mean_std(by_level[v]['auroc'])} ({by_level[v]['worst_node_auroc'].mean():.4f})" for v in levels) + " |")
    return "\n".join(lines)


def write_corruption_report(out: Path, config: FedCLConfig, seeds: Sequence[int], quick: bool) -> Path:
    """PNG and Markdown from ``out/corruption.csv``."""
    from fedcl.eval.plots import plot_curves
    from fedcl.experiments._drivers import protocol_text

    rows = pd.read_csv(out / "corruption.csv")
    plot_curves(rows, "level", ["auroc", "worst_node_auroc"], out / "corruption.png", panel="corruption",
                title="AUROC vs corruption level (mean ± std over seeds)")
    sections = [f"## {kind}\n\nlevel = {meaning}; cells: pooled AUROC mean ± std (worst node's AUROC)\n\n"
                + level_table(rows[rows["corruption"] == kind]) for kind, (_, meaning) in CORRUPTIONS.items()]
    report = out / "corruption.md"
    report.write_text(f"# Detection under incomplete, noisy and contaminated data\n\nData: `{config.data}`\n\n"
                      f"{protocol_text(config, seeds, quick)}\n\n{__doc__.split(chr(10), 2)[2].strip()}\n\n"
                      "![AUROC vs corruption](corruption.png)\n\n"
                      + "\n\n".join(sections) + "\n\nEvery run: [corruption.csv](corruption.csv).\n")
    return report


def corruption(config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
               progress: Callable[[str], None] = print) -> Path:
    """AUROC vs corruption level for ours and the baselines: CSV, PNG and a Markdown report."""
    out.mkdir(parents=True, exist_ok=True)
    corruption_rows(config, seeds, quick, progress=progress).to_csv(out / "corruption.csv", index=False)
    return write_corruption_report(out, config, seeds, quick)
