"""`fedcl experiment privacy --level node`: where node-level differential privacy starts to pay.

One data folder's rows are dealt to N nodes like independent sites (Dirichlet α = 1000 over 8 unlabelled
benign clusters: near-identical mixes, so N is the only thing that changes), and the federation trains
with DP-FedAvg (:mod:`fedcl.privacy.node_dp`) at each ε: nodes sampled with probability q each round,
updates clipped, Gaussian noise on their sum. Its encoder — the only thing the guarantee covers — scores
every node's held-out rows (personalisation off). ε = inf is FedAvg in the clear with every node in every
round. The noise in the mean shrinks as 1/(q·N), so the curve is AUROC against N, one line per ε.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.data import dirichlet_partition, read_dataset
from fedcl.experiments._benchmark import report_seed_rows
from fedcl.experiments._methods import fedcl_method, shrink
from fedcl.experiments._privacy import check_epsilons, plain_markdown
from fedcl.experiments._resume import ResultsFile, claim_folder
from fedcl.experiments._runner import QUICK_ROUNDS, mean_std, one_torch_thread
from fedcl.errors import ConfigError
from fedcl.pipeline import score_nodes, split_nodes, summarise

NODE_COUNTS = (10, 50, 100, 200, 300)
QUICK_NODE_COUNTS = (4, 8)
EPSILONS = (1.0, 2.0, 4.0, 8.0, math.inf)
QUICK_EPSILONS = (1.0, math.inf)
SAMPLE_RATE = 0.5  # q: half the nodes each round
MIN_BENIGN_ROWS = 50  # per dealt node: it trains, thresholds (99th percentile of validation) and tests
NEAR_IID = 1000.0
RESULTS = "node-level.csv"
KEY = ["data", "nodes", "epsilon", "seed"]
COLUMNS = [*KEY, "auroc", "fpr_at_tpr99", "worst_node_auroc", "sample_rate", "noise_multiplier", "seconds"]


def check_node_counts(counts: Sequence[int]) -> list[int]:
    """The node counts, each once; ConfigError for none or one below 2 (a federation)."""
    if not counts or min(counts) < 2:
        raise ConfigError(f"--nodes takes node counts of at least 2 (a federation), got {list(counts)}")
    return sorted(set(counts))


def dealt_splits(data: str, n_nodes: int, config: FedCLConfig, quick: bool):
    """The rows of ``data`` dealt to ``n_nodes`` near-identical nodes, split as every run splits them."""
    nodes = read_dataset(data, config.layout, config.schema)
    benign = sum(len(n.benign) for n in nodes)
    if benign < MIN_BENIGN_ROWS * n_nodes:
        raise ConfigError(f"{n_nodes} nodes need {MIN_BENIGN_ROWS * n_nodes:,} benign rows; {data} has {benign:,}")
    dealt = dirichlet_partition(nodes, n_nodes, NEAR_IID, config.seed, groups="clusters", min_benign=MIN_BENIGN_ROWS)
    splits = split_nodes(dealt, config)
    return shrink(splits, config.seed, nodes=n_nodes, train=40, held_out=20, attacks=40) if quick else splits


def node_privacy(config: FedCLConfig, datas: Sequence[str], seeds: Sequence[int], quick: bool, out: Path,
                 epsilons: Sequence[float] | None = None, node_counts: Sequence[int] | None = None,
                 progress: Callable[[str], None] = print) -> Path:
    """Run every (nodes, ε, seed) not yet in ``out/node-level.csv``; then node-level.md and node-level.png."""
    from fedcl.privacy.node_dp import noise_multiplier

    epsilons = list(epsilons or (QUICK_EPSILONS if quick else EPSILONS))
    check_epsilons(epsilons)
    counts = check_node_counts(node_counts if node_counts is not None else
                               QUICK_NODE_COUNTS if quick else NODE_COUNTS)
    claim_folder(out / RESULTS, config, quick,
                 sets=("dp_epsilon", "dp_level", "dp_sample_rate", "aggregation", "personalisation"))
    results = ResultsFile(out / RESULTS, KEY, COLUMNS)
    done = {tuple(str(v) for v in key) for key in results.done()}
    with one_torch_thread():
        for data, n_nodes, seed in ((d, n, s) for d in datas for n in counts for s in seeds):
            cfg = config.updated(data=data, seed=seed, rounds=QUICK_ROUNDS if quick else None,
                                 aggregation="fedavg", personalisation="off", dp_level="node",
                                 dp_sample_rate=SAMPLE_RATE)
            todo = [e for e in epsilons if (data, str(n_nodes), str(e), str(seed)) not in done]
            splits = dealt_splits(data, n_nodes, cfg, quick) if todo else []
            for epsilon in todo:
                start = time.perf_counter()
                detectors, _ = fedcl_method(dp_epsilon=epsilon)(splits, cfg)
                summary = summarise(score_nodes(detectors, splits))
                node_auroc = [m["auroc"] for m in summary["nodes"].values() if m["auroc"] is not None]
                z = noise_multiplier(epsilon, cfg.dp_delta, SAMPLE_RATE, cfg.rounds) if math.isfinite(epsilon) else 0.0
                results.append({"data": data, "nodes": n_nodes, "epsilon": epsilon, "seed": seed,
                                "auroc": summary["pooled"]["auroc"], "fpr_at_tpr99": summary["pooled"]["fpr_at_tpr99"],
                                "worst_node_auroc": min(node_auroc) if node_auroc else None,
                                "sample_rate": SAMPLE_RATE if math.isfinite(epsilon) else 1.0,
                                "noise_multiplier": z, "seconds": time.perf_counter() - start})
                progress(f"{Path(data).name} | {n_nodes} nodes | seed {seed} | ε {epsilon:g}: "
                         f"AUROC {summary['pooled']['auroc']:.4f}, FPR@TPR0.99 {summary['pooled']['fpr_at_tpr99']:.4f}")
    return write_node_report(out, results.rows())


def _table(rows: pd.DataFrame) -> str:
    """Per data and N: AUROC and FPR@TPR0.99 per ε (mean ± std over seeds) and AUROC lost against the clear run."""
    lines = ["| data | nodes | ε | noise multiplier z | AUROC | FPR@TPR0.99 | worst node AUROC | AUROC lost | seeds |",
             "|---" * 9 + "|"]
    for (data, nodes), df in rows.groupby(["data", "nodes"], sort=True):
        clear = df[df["epsilon"] == math.inf]["auroc"].mean()
        for epsilon, runs in df.groupby("epsilon"):
            lost = f"{clear - runs['auroc'].mean():+.4f}" if not math.isnan(clear) else "—"
            lines.append(f"| {data} | {nodes} | {epsilon:g} | {runs['noise_multiplier'].mean():.3g} | "
                         f"{mean_std(runs['auroc'])} | {mean_std(runs['fpr_at_tpr99'])} | "
                         f"{mean_std(runs['worst_node_auroc'])} | {lost} | {len(runs)} |")
    return "\n".join(lines)


def write_node_report(out: Path, rows: pd.DataFrame) -> Path:
    """node-level.md (tables on the report seeds, or the development seed if no other ran) and node-level.png."""
    from fedcl.eval.plots import plot_curves

    rows = rows.assign(data=rows["data"].map(lambda d: Path(d).name), epsilon=rows["epsilon"].astype(float))
    shown, which = report_seed_rows(rows)
    shown = shown.sort_values(["nodes", "epsilon"], kind="stable")
    plot_curves(shown.assign(ε=shown["epsilon"].map(lambda e: f"{e:g}"), N=shown["nodes"].astype(str)),
                "N", ["auroc", "fpr_at_tpr99"], out / "node-level.png", line="ε", panel="data",
                title=f"Node-level DP (DP-FedAvg, q = {SAMPLE_RATE:g}), {which}: mean ± std over seeds")
    text = f"""# Where node-level differential privacy starts to pay

{plain_markdown(__doc__.split(chr(10), 2)[2].strip())}

ε per node for the whole run, δ as configured (default 1e-5), q = {SAMPLE_RATE:g}, update clip as configured
(default 0.5); z is the noise multiplier the accountant calibrated (noise std z·S on the sum of clipped
updates). Tables on {which}.

{_table(shown)}

![node-level DP](node-level.png)

Every run: [{RESULTS}]({RESULTS}).
"""
    report = out / "node-level.md"
    report.write_text(text)
    return report
