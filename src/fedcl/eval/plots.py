"""Figures of a run, drawn from the files the run wrote (scores.csv, history.jsonl)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

# One look for every figure fedcl draws.
_STYLE = {
    "figure.dpi": 120, "savefig.dpi": 120, "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8,
    "legend.fontsize": 7, "legend.frameon": False, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False,
}


def _styled(plot):
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with plt.style.context(_STYLE):
            return plot(*args, **kwargs)
    return wrapper


def _legend_beside(ax) -> None:
    """The legend right of the axes, never over the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)


def _log_x(ax) -> None:
    """A log x axis labelled at 1, 2 and 5 of each decade, in plain numbers: these spans are a decade or two."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _save(fig, path: Path) -> None:
    fig.savefig(path, bbox_inches="tight")  # "tight" keeps legends placed beside the axes
    plt.close(fig)


def plot_roc(scores: pd.DataFrame, path: Path) -> None:
    """Pooled ROC (bold) and one thin curve per node that has both classes; log FPR axis."""
    nodes = {str(name): roc_curve(df["label"], df["score"])[:2] for name, df in scores.groupby("node", sort=False)
             if df["label"].nunique() == 2}
    pooled = roc_curve(scores["label"], scores["score"])[:2] if scores["label"].nunique() == 2 else None
    plot_roc_curves(nodes, pooled, path)


@_styled
def plot_roc_curves(nodes: dict[str, tuple[np.ndarray, np.ndarray]], pooled: tuple[np.ndarray, np.ndarray] | None,
                    path: Path, title: str = "ROC on held-out rows") -> None:
    """(FPR, TPR) curves: the pooled one bold (if any), one thin curve per node; log FPR axis."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (fpr, tpr) in nodes.items():
        ax.plot(fpr, tpr, lw=0.8, alpha=0.6, label=name)
    if pooled is not None:
        ax.plot(*pooled, lw=2.5, color="black", label="pooled")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.axhline(0.99, ls=":", color="grey", lw=0.8)
    ax.set_xlabel("false-positive rate (benign test rows flagged)")
    ax.set_ylabel("true-positive rate (attack rows caught)")
    ax.set_title(title)
    _legend_beside(ax)  # none without attack rows: no curve to name
    _save(fig, path)


@_styled
def plot_history(history: list[dict], path: Path) -> None:
    """Training loss and the server's node weights per round."""
    fig, (ax_loss, ax_w) = plt.subplots(1, 2, figsize=(9, 3.5))
    rounds = [h["round"] for h in history]
    ax_loss.plot(rounds, [h["loss"] for h in history], marker="o", ms=3, label="InfoNCE + λ·consistency")
    ax_loss.plot(rounds, [h["contrastive"] for h in history], ls="--", label="InfoNCE")
    ax_loss.set_xlabel("round")
    ax_loss.set_ylabel("mean local loss")
    ax_loss.legend(loc="upper right")  # losses fall: the upper right stays clear
    names = dict.fromkeys(name for h in history for name in h["nodes"])  # a node may miss rounds (dropouts)
    for name in names:
        ax_w.plot(rounds, [h["nodes"][name]["weight"] if name in h["nodes"] else np.nan for h in history],
                  lw=1, marker=".", ms=2, label=name)
    ax_w.set_xlabel("round")
    ax_w.set_ylabel("aggregation weight w_i")
    _legend_beside(ax_w)
    fig.tight_layout()
    _save(fig, path)


@_styled
def plot_roc_methods(scores: pd.DataFrame, path: Path) -> None:
    """One pooled ROC curve per method (column ``method``), log FPR axis."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, df in scores.groupby("method", sort=False):
        fpr, tpr, _ = roc_curve(df["label"], df["score"])
        ax.plot(fpr, tpr, lw=2.5 if "ours" in name else 1.0, label=str(name))
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (benign test rows flagged)")
    ax.set_ylabel("true-positive rate (attack rows caught)")
    ax.set_title("ROC of every method, held-out rows, first seed")
    _legend_beside(ax)
    _save(fig, path)


@_styled
def plot_sweep(rows: pd.DataFrame, param: str, metric: str, path: Path, log_x: bool) -> None:
    """Mean ± std over seeds of ``metric`` against ``param``."""
    stats = rows.groupby(param)[metric].agg(["mean", "std"]).reset_index()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.errorbar(stats[param], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(f"pooled {metric} (mean ± std over seeds)")
    ax.set_title(f"{metric} vs {param}")
    _save(fig, path)


@_styled
def plot_curves(rows: pd.DataFrame, x: str, metrics: Sequence[str], out: Path, line: str = "method",
                panel: str | None = None, title: str = "") -> Path:
    """Mean ± std over seeds of each metric against ``x``, one line per value of ``line``.

    Parameters
    ----------
    rows : DataFrame
        One row per run (e.g. per seed), with columns ``x``, ``line``, ``panel`` (if given) and
        each of ``metrics``.
    x : str
        Column on the x axis, drawn as ordered categories in the order they first appear in
        ``rows`` (so "natural, α=100, …, quantity" or "0, 0.1, 0.3" keep the order they ran in);
        each panel shows its own values.
    metrics : sequence of str
        One column of subplots per metric.
    out : Path
        PNG file to write.
    line : str, default="method"
        One line per value of this column; rows sharing (``panel``, ``line``, ``x``) are the
        runs averaged.
    panel : str or None, default=None
        If given, one row of subplots per value of this column (a panel × metric grid).
    title : str, default=""
        Figure title.

    Returns
    -------
    out : Path
        The PNG written.
    """
    lines = pd.unique(rows[line])
    panels = pd.unique(rows[panel]) if panel else [None]
    fig, axes = plt.subplots(len(panels), len(metrics), figsize=(4.5 * len(metrics), 3.4 * len(panels) + 0.8),
                             squeeze=False)
    # Lines side by side within a category, so their error bars do not hide each other.
    offsets = (np.arange(len(lines)) - (len(lines) - 1) / 2) * min(0.08, 0.5 / len(lines))
    for ax_row, value in zip(axes, panels):
        runs = rows if panel is None else rows[rows[panel] == value]
        xs = pd.unique(runs[x])  # per panel: panels may have their own levels
        for ax, metric in zip(ax_row, metrics):
            stats = runs.groupby([line, x], sort=False)[metric].agg(["mean", "std"])
            for name, offset in zip(lines, offsets):
                if name in stats.index.get_level_values(0):
                    s = stats.loc[name].reindex(xs)
                    ax.errorbar(np.arange(len(xs)) + offset, s["mean"], yerr=s["std"].fillna(0), marker="o",
                                ms=4, capsize=3, lw=1.2, label=str(name))
            ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs], rotation=30, ha="right")
            ax.set_title(metric if panel is None else f"{panel} = {value}: {metric}")
        ax_row[0].set_ylabel("mean ± std over seeds")
    for ax in axes[-1]:
        ax.set_xlabel(x)
    # One legend below the grid, from every subplot: a line may be missing from some panels.
    legend = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    columns = min(len(legend), 4)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=columns, title=line)
    fig.suptitle(title, fontsize=10)
    legend_inches = 0.35 + 0.22 * -(-len(legend) // columns)
    fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1 - 0.3 / fig.get_figheight()))
    _save(fig, out)
    return out


@_styled
def plot_no_regret(table: pd.DataFrame, path: Path, floor: float = 1e-4) -> None:
    """Per cell of a no-regret table (``fedcl.experiments.no_regret``), fedcl's misses (1 − AUROC) and
    FPR@TPR0.99 as multiples of the best baseline's: left of 1 ahead, right of it (red) behind."""
    def relative(mine: pd.Series, best: pd.Series) -> pd.Series:
        return mine.clip(lower=floor) / best.clip(lower=floor)  # a figure of 0 counts as ``floor``: finite ratios

    ratios = {"1 − AUROC": relative(1 - table["fedcl auroc"], 1 - table["best baseline auroc"]),
              "FPR@TPR0.99": relative(table["fedcl fpr@tpr99"], table["best baseline fpr@tpr99"])}
    best = {"1 − AUROC": table["auroc by"], "FPR@TPR0.99": table["fpr by"]}
    y = np.arange(len(table))[::-1]  # the table's first cell on top
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.2 * len(table) + 1.4), sharey=True)
    for ax, (metric, ratio) in zip(axes, ratios.items()):
        behind = ratio.to_numpy() > 1
        ax.barh(y, ratio - 1, left=1, color=np.where(behind, "tab:red", "tab:blue"), height=0.7)
        for yi, r, name in zip(y[behind], ratio[behind], best[metric][behind]):  # left of 1: that row is empty
            ax.annotate(f"{r:.2f}× {name} ", (1, yi), va="center", ha="right", fontsize=7, color="tab:red")
        ax.axvline(1, color="black", lw=0.8)
        _log_x(ax)
        ax.set_xlabel(f"{metric}: fedcl ÷ best baseline (log; < 1 ahead)")
    axes[0].set_yticks(y, [f"{d}: {c}" for d, c in zip(table["data"], table["cell"])])
    fig.suptitle("No regret per cell: fedcl against the best baseline on each metric (means over seeds)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


@_styled
def plot_tail_roc(curves: pd.DataFrame, path: Path, ours: str, from_tpr: float = 0.9, floor: float = 1e-4) -> None:
    """The last stretch of pooled ROC curves, one panel per value of ``panel``: ``fpr`` at each ``tpr``
    (columns) from ``from_tpr`` on, one line per ``method`` in one colour across panels, ``ours`` bold;
    log FPR axis, an FPR of 0 drawn at ``floor``."""
    curves = curves[curves["tpr"] >= from_tpr].assign(fpr=lambda c: c["fpr"].clip(lower=floor))
    panels = pd.unique(curves["panel"])
    colours = dict(zip(pd.unique(curves["method"]), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 3.6), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels):
        for method, df in curves[curves["panel"] == panel].groupby("method", sort=False):
            ax.plot(df["fpr"], df["tpr"], marker=".", ms=3, lw=2.2 if method == ours else 1.0, color=colours[method],
                    label=str(method))
        ax.axhline(0.99, ls=":", color="grey", lw=0.8)
        _log_x(ax)
        ax.set_ylim(from_tpr, 1.001)
        ax.set_title(str(panel))
        ax.set_xlabel(f"false-positive rate (log; 0 at {floor:g})")
    axes[0][0].set_ylabel("true-positive rate (attack rows caught)")
    # One legend for every panel: each shows fedcl and the baselines ahead of it there
    legend = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    axes[0][-1].legend(legend.values(), legend.keys(), loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    _save(fig, path)


@_styled
def plot_method_grid(rows: pd.DataFrame, path: Path, title: str = "") -> None:
    """Every method (columns) in every cell (rows, ``data: cell``): the mean over seeds of pooled AUROC and of
    FPR@TPR0.99, one heat map each, coloured on a log scale of the misses (1 − AUROC) and of the FPR, each
    square labelled with its figure; methods ordered by their mean FPR@TPR0.99."""
    means = rows.assign(row=rows["data"] + ": " + rows["cell"]).groupby(["row", "method"], sort=False)[
        ["auroc", "fpr_at_tpr99"]].mean()
    cells_order = list(dict.fromkeys(means.index.get_level_values(0)))
    fpr = means["fpr_at_tpr99"].unstack().reindex(cells_order)
    methods = fpr.mean().sort_values().index
    grids = {"pooled AUROC": means["auroc"].unstack().reindex(index=cells_order, columns=methods),
             "FPR@TPR0.99": fpr[methods]}
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.55 * len(methods) + 2.5) + 2, 0.24 * len(cells_order) + 2.6),
                             sharey=True)
    for ax, (metric, grid) in zip(axes, grids.items()):
        shade = np.log10((1 - grid if metric == "pooled AUROC" else grid).clip(lower=1e-4).to_numpy(dtype=float))
        ax.imshow(shade, cmap="RdYlGn_r", aspect="auto", vmin=-3.5, vmax=0)  # green: few misses or false alarms
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.4f}" if metric == "pooled AUROC" else f"{value:.3f}", ha="center",
                        va="center", fontsize=5)
        ax.set_xticks(range(len(methods)), methods, rotation=40, ha="right")
        ax.set_title(f"{metric} (mean over seeds)")
        ax.grid(False)
    axes[0].set_yticks(range(len(cells_order)), cells_order)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
