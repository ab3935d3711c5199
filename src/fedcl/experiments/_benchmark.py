"""The development benchmark: fedcl against the baselines that keep rows on their node, on every kind of data.

See :data:`CELLS_TEXT` for the cells. Design and report data are kept apart by seed: seed 0 is
the development seed (choose defaults there), seeds ≥ 1 are reported. Results are appended to
``results.csv`` cell by cell, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.data import NodeData, NodeSplit, detect_layout, dirichlet_partition, home_cluster_partition, read_dataset
from fedcl.eval.metrics import fpr_at_tpr
from fedcl.experiments._methods import Method, fedcl_method, shrink, unsupervised_methods
from fedcl.experiments._resume import ResultsFile, claim_folder
from fedcl.experiments._runner import QUICK_ROUNDS, mean_std, one_torch_thread
from fedcl.pipeline import score_nodes, split_nodes, summarise
from fedcl.seeding import node_rng
from fedcl.errors import ConfigError

CELLS_TEXT = """Each cell runs every method on the same splits, in the same run.

- *Deals* of each data folder: as it is (*natural*); for folders without device labels (the client
  layout), the rows re-dealt like devices (*home clusters*: the benign rows form 8 k-means clusters;
  node k holds 90 % of clusters k mod 8 and k+1 mod 8, shared with the other nodes at home there,
  and 10 % of every cluster is spread evenly) and by Dirichlet(α) over the same clusters;
- *small nodes*: each deal with every node's benign training rows cut to a few hundred (validation
  and test rows unchanged);
- *unseen device*: each node in turn left out of federated training; it joins afterwards with the
  federation's model and fits its own scaler, references and threshold. Only its rows are scored
  (methods that train on one node alone are unaffected);
- *a node from another network* (when two or more data folders are given): each folder as it is, plus
  one node of another folder (node number seed mod its node count), as a site whose traffic comes from
  another network joining the federation.

*fedcl (ours)* is the default detector: personalised, each node scoring through three views (the
federation's encoder, one trained on its rows alone, and the federation's fine-tuned on them:
`personalisation = "tuned"`); *fedcl, two views (weighted)* is the same run with `--personalisation
weighted` (the first two views: the default before session 16); *fedcl, federation's encoder only* with
`--personalisation off` (the first release); *fedcl, two views, accepting the federation's benign* is the
two-view detector with `acceptance_margin` 0.7 (each node accepts a row another node's federation view
scores below 0.7 × its alarm line). The no-regret tables set the default, and the two views, against
the baselines only.

Every cell also reports the *federation-wide benign* FPR: each node's detector, at its own
threshold, on the other nodes' held-out benign rows (traffic the federation has seen, this node
has not), apart from the FPR on its own benign test rows."""

RESULTS = "results.csv"
CURVES = "curves.csv"  # one row per run: its pooled FPR at each TPR of TPR_GRID
# where pooled ROC curves part: the bulk coarsely, the last tenth of the attacks (FPR@TPR0.99's region) finely
TPR_GRID = np.round(np.r_[np.arange(0.5, 0.9, 0.05), np.linspace(0.9, 1.0, 41)], 4)
CURVE_COLUMNS = [str(t) for t in TPR_GRID]
DEV_SEED = 0
SMALL_TRAIN_ROWS = (1000, 500, 250)
QUICK_SMALL_TRAIN_ROWS = (250,)
ALPHAS = (0.5, 0.1)
MIN_BENIGN_ROWS = 100  # a dealt node trains, thresholds and tests on its benign rows
KEY = ["data", "cell", "method", "seed"]
SHARED_ONLY = "fedcl, federation's encoder only"  # personalisation off: what the personal views add
# acceptance_margin on, at the margin chosen on the development seed (docs/benchmark.md): item 3's trade,
# measured on the two views it was chosen with
ACCEPT_MARGIN = 0.7
ACCEPTING = f"fedcl, two views, accepting the federation's benign (margin {ACCEPT_MARGIN:g})"
WEIGHTED = "fedcl, two views (weighted)"  # personalisation weighted: no fine-tuned view (the former default)
OURS = "fedcl (ours)"
OUR_METHODS = (OURS, SHARED_ONLY, ACCEPTING, WEIGHTED)  # none is a baseline of another


def benchmark_methods() -> list[Method]:
    """fedcl, fedcl without personalisation, fedcl with two views (without the fine-tuned one), the same
    accepting what other nodes find benign, and every baseline of `compare` that keeps rows on their node
    (no centralised rows)."""
    ours, *baselines = [m for m in unsupervised_methods() if m.kind != "centralised"]
    return [ours, Method(SHARED_ONLY, "ablation", fedcl_method(personalisation="off"), federated=True),
            Method(WEIGHTED, "ablation", fedcl_method(personalisation="weighted"), federated=True),
            Method(ACCEPTING, "ablation", fedcl_method(personalisation="weighted", acceptance_margin=ACCEPT_MARGIN),
                   federated=True), *baselines]


@dataclass(frozen=True)
class Cell:
    """One way to present a data folder to the federation."""

    data: str
    name: str  # e.g. "natural", "home clusters, 250 rows", "natural, unseen device"
    deal: Callable[[list[NodeData], int], list[NodeData]] | None = field(default=None, repr=False)
    train_rows: int | None = None
    unseen: bool = False
    foreign: str | None = None  # another data folder, one node of which joins

    def make_splits(self, config: FedCLConfig) -> list[NodeSplit]:
        nodes = read_dataset(self.data, config.layout, config.schema)
        splits = split_nodes(nodes if self.deal is None else self.deal(nodes, config.seed), config)
        if self.foreign is not None:
            others = read_dataset(self.foreign, config.layout, config.schema)
            (joining,) = split_nodes([others[config.seed % len(others)]], config.updated(data=self.foreign))
            splits.append(replace(joining, name=f"{Path(self.foreign).name}/{joining.name}"))
        if self.train_rows is None:
            return splits
        return [replace(s, train=s.train[np.sort(node_rng(config.seed, s.name, self.train_rows)
                                                 .permutation(len(s.train))[: self.train_rows])])
                for s in splits]


def cells(data: str, quick: bool) -> list[Cell]:
    """Every cell of one data folder, in the order they run."""
    layout = detect_layout(data)
    deals: list[tuple[str, Callable | None]] = [("natural", None)]
    if layout == "clients":  # no device labels: deal unlabelled clusters like devices
        deals.append(("home clusters", lambda nodes, seed: home_cluster_partition(
            nodes, len(nodes), seed, min_benign=MIN_BENIGN_ROWS)))
        deals += [(f"Dirichlet α={a:g}", partial(_dirichlet, alpha=a)) for a in ([] if quick else ALPHAS)]
    out = []
    for name, deal in deals:
        out.append(Cell(data, name, deal))
        out += [Cell(data, f"{name}, {rows} train rows", deal, rows)
                for rows in (QUICK_SMALL_TRAIN_ROWS if quick else SMALL_TRAIN_ROWS)]
        out.append(Cell(data, f"{name}, unseen device", deal, unseen=True))
    return out


def foreign_cells(datas: Sequence[str]) -> list[Cell]:
    """For each data folder and each other one, the folder as it is plus one node of the other."""
    return [Cell(data, f"natural, a node from {Path(other).name}", foreign=other)
            for data in datas for other in datas if other != data]


def all_cells(datas: Sequence[str], quick: bool) -> list[Cell]:
    """The cells of every data folder, then those with a node from another folder, in run order."""
    return [c for data in datas for c in cells(data, quick)] + foreign_cells(datas)


def report_seed_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The runs of the report seeds (every seed but :data:`DEV_SEED`), or the development seed's if no other
    ran, and a phrase saying which."""
    report = rows[rows["seed"] != DEV_SEED]
    if not len(report):
        return rows, f"the development seed {DEV_SEED} only"
    seeds = sorted(int(s) for s in report["seed"].unique())
    return report, f"report seeds {seeds} (seed {DEV_SEED} is the development seed)"


def _named(every: Sequence, names: Sequence[str], what: str) -> list:
    """The items of ``every`` called ``names`` (all when empty), in order; ConfigError for a name none has."""
    unknown = set(names) - {item.name for item in every}
    if unknown:
        raise ConfigError(f"no {what} named {', '.join(sorted(unknown))}; {what}s: "
                          f"{', '.join(dict.fromkeys(item.name for item in every))}")
    return [item for item in every if not names or item.name in names]


def named_methods(names: Sequence[str]) -> list[Method]:
    """The benchmark's methods called ``names`` (all when empty). After a change to one method, its rows
    alone can be run again (their old rows taken out of results.csv)."""
    return _named(benchmark_methods(), names, "method")


def named_cells(datas: Sequence[str], quick: bool, names: Sequence[str]) -> list[Cell]:
    """The cells of ``datas`` called ``names`` (all when empty), in run order."""
    return _named(all_cells(datas, quick), names, "cell")


def _dirichlet(nodes: list[NodeData], seed: int, alpha: float) -> list[NodeData]:
    return dirichlet_partition(nodes, len(nodes), alpha, seed, groups="clusters", min_benign=MIN_BENIGN_ROWS)


def federation_benign_fpr(detectors: dict, splits: list[NodeSplit]) -> float:
    """Share of other nodes' held-out benign rows each node's detector flags at its own threshold, pooled."""
    flagged = total = 0
    for s in splits:
        others = [o.test_benign for o in splits if o.name != s.name and len(o.test_benign)]
        if others:
            x = np.vstack(others)
            flagged += int(detectors[s.name].predict(x).sum())
            total += len(x)
    return flagged / total if total else float("nan")


def _fit(method: Method, splits: list[NodeSplit], config: FedCLConfig, unseen: bool) -> tuple[dict, list[NodeSplit]]:
    """Per-node detectors; for an unseen-device cell, each node's detector from a federation without it."""
    if not unseen or not method.federated:
        return method.fit(splits, config)  # a local method never sees other nodes anyway
    detectors = {}
    for s in splits:
        fitted, _ = method.fit(splits, config, trainers={o.name for o in splits} - {s.name})
        detectors[s.name] = fitted[s.name]
    return detectors, splits


def cell_splits(cell: Cell, config: FedCLConfig, quick: bool) -> list[NodeSplit]:
    """The splits every method of one cell and seed runs on."""
    splits = cell.make_splits(config)
    if not quick:
        return splits
    if cell.foreign is None:
        return shrink(splits, config.seed)
    return shrink(splits[:2] + splits[-1:], config.seed)  # the joining node stays


def run_cell(cell: Cell, method: Method, config: FedCLConfig, splits: list[NodeSplit]) -> dict:
    """One row of results.csv: pooled and per-node figures of one method in one cell and seed."""
    return run_cell_with_curve(cell, method, config, splits)[0]


def run_cell_with_curve(cell: Cell, method: Method, config: FedCLConfig, splits: list[NodeSplit]) -> tuple[dict, dict]:
    """:func:`run_cell`'s row, and one row of curves.csv: the pooled FPR at each TPR of :data:`TPR_GRID`."""
    start = time.perf_counter()
    detectors, test_splits = _fit(method, splits, config, cell.unseen)
    scores = score_nodes(detectors, test_splits)
    summary = summarise(scores)
    node_auroc = [m["auroc"] for m in summary["nodes"].values() if m["auroc"] is not None]
    key = {"data": cell.data, "cell": cell.name, "method": method.name, "seed": config.seed}
    curve = dict(zip(CURVE_COLUMNS, fpr_at_tpr(scores["label"].to_numpy(), scores["score"].to_numpy(), TPR_GRID)
                     if summary["pooled"]["auroc"] is not None else np.full(len(TPR_GRID), np.nan)))  # one class: none
    return {**key,
            "auroc": summary["pooled"]["auroc"], "fpr_at_tpr99": summary["pooled"]["fpr_at_tpr99"],
            "mean_node_auroc": float(np.mean(node_auroc)) if node_auroc else None,
            "worst_node_auroc": min(node_auroc) if node_auroc else None,
            "own_benign_fpr": summary["pooled"]["fpr"],
            "federation_benign_fpr": federation_benign_fpr(detectors, test_splits),
            "nodes": len(test_splits), "seconds": time.perf_counter() - start}, {**key, **curve}


@one_torch_thread()
def benchmark(config: FedCLConfig, datas: Sequence[str], seeds: Sequence[int], quick: bool, out: Path,
              progress: Callable[[str], None] = print, methods: Sequence[Method] | None = None,
              only: Sequence[str] | None = None) -> Path:
    """Run every (cell, method, seed) not yet in ``out/results.csv``, appending as it goes; then the report.

    Parameters
    ----------
    config : FedCLConfig
        Settings of every run (``data`` is ignored: ``datas`` names the folders).
    datas : sequence of str
        Data folders; each gives the cells of :func:`cells`.
    seeds : sequence of int
        Seed 0 is the development seed; the others are reported.
    quick : bool
        Small slices, 3 rounds, fewer cells (for CI).
    out : Path
        Result folder: ``results.csv``, ``benchmark.md``, ``benchmark.png``.
    only : sequence of str, optional
        Run only the cells of these names (e.g. ``["natural"]``); default: every cell.
    """
    chosen = named_cells(datas, quick, only or ())  # an unknown name fails before any run
    claim_folder(out / RESULTS, config, quick)
    results = out / RESULTS
    done = set()
    if results.is_file():
        done = set(map(tuple, pd.read_csv(results, usecols=KEY).astype(str).to_numpy()))
    runs, curves = ResultsFile(results, KEY), ResultsFile(out / CURVES, KEY, [*KEY, *CURVE_COLUMNS])
    methods = benchmark_methods() if methods is None else methods
    for cell in chosen:
        for seed in seeds:
            cfg = config.updated(data=cell.data, seed=seed, rounds=QUICK_ROUNDS if quick else None)
            todo = [m for m in methods if (cell.data, cell.name, m.name, str(seed)) not in done]
            splits = cell_splits(cell, cfg, quick) if todo else []  # read and dealt once per cell and seed
            for method in todo:
                row, curve = run_cell_with_curve(cell, method, cfg, splits)
                curves.append(curve)  # before the row that marks the run done
                runs.append(row)
                progress(f"{Path(cell.data).name} | {cell.name} | seed {seed} | {method.name}: "
                         f"AUROC {row['auroc']:.4f}, FPR@TPR0.99 {row['fpr_at_tpr99']:.4f}")
    return write_benchmark_report(out, config, quick)


def no_regret(rows: pd.DataFrame, ours: str = OURS) -> pd.DataFrame:
    """Per (data, cell), grouped by data: fedcl's mean AUROC and FPR@TPR0.99 against the best baseline's on each."""
    means = rows.groupby(["data", "cell", "method"], sort=False)[["auroc", "fpr_at_tpr99"]].mean().reset_index()
    out = []
    for (data, cell), df in means.groupby(["data", "cell"], sort=False):
        mine = df[df["method"] == ours]
        others = df[~df["method"].isin(OUR_METHODS)]  # the baselines: not our own variants
        if mine.empty or others.empty:
            continue
        best_auroc = others.loc[others["auroc"].idxmax()]
        best_fpr = others.loc[others["fpr_at_tpr99"].idxmin()]
        out.append({"data": Path(data).name, "cell": cell,
                    "fedcl auroc": mine["auroc"].iloc[0], "best baseline auroc": best_auroc["auroc"],
                    "auroc by": best_auroc["method"],
                    "fedcl fpr@tpr99": mine["fpr_at_tpr99"].iloc[0], "best baseline fpr@tpr99": best_fpr["fpr_at_tpr99"],
                    "fpr by": best_fpr["method"],
                    "no regret": bool(mine["auroc"].iloc[0] >= best_auroc["auroc"]
                                      and mine["fpr_at_tpr99"].iloc[0] <= best_fpr["fpr_at_tpr99"])})
    return pd.DataFrame(out).sort_values("data", kind="stable", ignore_index=True) if out else pd.DataFrame()


def _markdown(df: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else ("yes" if v is True else "**no**" if v is False else str(v))
    lines = ["| " + " | ".join(df.columns) + " |", "|---" * len(df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _method_table(rows: pd.DataFrame) -> str:
    metrics = ["auroc", "fpr_at_tpr99", "worst_node_auroc", "own_benign_fpr", "federation_benign_fpr"]
    lines = ["| data | cell | method | " + " | ".join(metrics) + " | seeds |", "|---" * (len(metrics) + 4) + "|"]
    for (data, cell, method), df in rows.groupby(["data", "cell", "method"], sort=False):
        lines.append(f"| {Path(data).name} | {cell} | {method} | " + " | ".join(mean_std(df[m]) for m in metrics)
                     + f" | {len(df)} |")
    return "\n".join(lines)


def behind_curves(table: pd.DataFrame, curves: pd.DataFrame, shown: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """For each cell a no-regret ``table`` marks behind, the pooled ROC tail (mean FPR over the seeds at each TPR
    of the grid) of fedcl and of the baselines ahead of it, from the ``curves`` (curves.csv) of the runs
    ``shown`` (results.csv rows); and the cells left out because some of those runs kept no curve."""
    # Only the runs shown, each once: a run cut between its curve and its row wrote its curve again
    curves = curves.drop_duplicates(KEY, keep="last").merge(shown[KEY], on=KEY)
    frames, missing = [], []
    for _, miss in table[~table["no regret"]].iterrows():
        methods = list(dict.fromkeys([OURS, miss["auroc by"], miss["fpr by"]]))
        label = f"{miss['data']}: {miss['cell']}"

        def of_cell(df: pd.DataFrame) -> pd.DataFrame:
            return df[(df["data"].map(lambda d: Path(d).name) == miss["data"]) & (df["cell"] == miss["cell"])
                      & df["method"].isin(methods)]

        mine = of_cell(curves)
        if len(mine) < len(of_cell(shown)):
            missing.append(label)
            continue
        for method, df in mine.groupby("method", sort=False):
            frames.append(pd.DataFrame({"panel": label, "method": method, "tpr": TPR_GRID,
                                        "fpr": df[CURVE_COLUMNS].mean().to_numpy()}))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), missing


def write_benchmark_report(out: Path, config: FedCLConfig, quick: bool) -> Path:
    """benchmark.md, benchmark.png, no-regret.png and (where fedcl is behind) behind.png from ``out``'s results."""
    from fedcl.eval.plots import plot_method_grid, plot_no_regret, plot_tail_roc
    from fedcl.experiments._drivers import protocol_text

    shown, which = report_seed_rows(pd.read_csv(out / RESULTS))
    for stale in ("no-regret.png", "behind.png"):  # an earlier report's, which this one may not draw
        (out / stale).unlink(missing_ok=True)
    plot_method_grid(shown.assign(data=shown["data"].map(lambda d: Path(d).name)), out / "benchmark.png",
                     title=f"Benchmark, {which}")
    table = no_regret(shown)
    figures = ""
    if len(table):
        plot_no_regret(table, out / "no-regret.png")
        figures = "\n![no regret](no-regret.png)\n"
        curves = pd.read_csv(out / CURVES) if (out / CURVES).is_file() else pd.DataFrame(columns=KEY)
        tails, missing = behind_curves(table, curves, shown)
        if len(tails):
            plot_tail_roc(tails, out / "behind.png", ours=OURS)
            figures += f"""
Where fedcl is behind: the pooled ROC curves' last stretch (mean FPR over the seeds at each TPR) of fedcl and
of the baselines ahead of it ([{CURVES}]({CURVES})).

![behind](behind.png)
"""
        if missing:
            figures += (f"\nBehind, without the curves of every run (made before runs kept them): "
                        f"{'; '.join(missing)}.\n")
    variant_text = "" if WEIGHTED not in set(shown["method"]) else f"""
## No regret of fedcl with two views (`personalisation = "weighted"`, the default before session 16)

{_markdown(no_regret(shown, ours=WEIGHTED))}
"""
    text = f"""# Development benchmark

{protocol_text(config, sorted(int(s) for s in shown["seed"].unique()), quick)}

{CELLS_TEXT}

Design and report data: seed {DEV_SEED} is the development seed, on which defaults are chosen;
the tables below are on {which}.

## No regret: fedcl against the best baseline of each cell (means over seeds)

{_markdown(table)}
{figures}{variant_text}
## Every method in every cell

{_method_table(shown)}

![benchmark](benchmark.png)

Every run: [{RESULTS}]({RESULTS}).
"""
    report = out / "benchmark.md"
    report.write_text(text)
    return report
