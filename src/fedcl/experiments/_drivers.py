"""`fedcl experiment ...`: each writes CSV, then a Markdown report with its tables and figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.experiments._methods import Method, ablation_methods, unsupervised_methods
from fedcl.experiments._runner import log_grid, mean_std_table, run_methods, save_scores, sweep
from fedcl.experiments._resume import ResultsFile
from fedcl.rundir import prepare_run_dir

PROTOCOL = """Protocol: unsupervised detectors train on benign rows only; each node's threshold is the 99th
percentile of its benign validation scores; metrics on held-out benign test rows and attack rows,
pooled over nodes; leakage guard {guard}; splits per node (train / validation / test, seeded);
mean ± std over seeds {seeds}{quick}."""
SUPERVISED_NOTE = " Supervised rows train on a labelled slice of the attack rows, which is removed from their test rows."

SWEEPS = {  # parameter -> (grid, metric, log axis)
    "lr": (log_grid(1e-4, 1e-1, 7), "auroc", True),
    "temperature": ([0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0], "f1", True),
}


def protocol_text(config: FedCLConfig, seeds: Sequence[int], quick: bool, supervised: bool = False) -> str:
    return PROTOCOL.format(guard=config.leakage_guard, seeds=list(seeds),
                           quick=" (QUICK mode: 3 nodes, a few hundred rows each, 3 rounds)" if quick else "",
                           ) + (SUPERVISED_NOTE if supervised else "")


def fresh_results(out: Path, name: str, key: Sequence[str]) -> ResultsFile:
    """``out / name`` as a table of this run's rows, each written as its run ends (an interrupted
    experiment keeps what it finished, and nothing of an earlier run once it has a row)."""
    return ResultsFile(prepare_run_dir(out) / name, key, replace=True)


def _table_report(title: str, methods: Sequence[Method], config: FedCLConfig, seeds: Sequence[int], quick: bool,
                  out: Path, progress: Callable[[str], None], supervised: bool = False) -> Path:
    from fedcl.eval.plots import plot_roc_methods

    import pandas as pd

    results = fresh_results(out, "results.csv", ("method", "seed"))
    rows, scores = run_methods(methods, config, seeds, quick, progress, on_row=results.append)
    rows.to_csv(results.path, index=False)
    save_scores(scores, out / "scores_first_seed.csv.gz")
    plot_roc_methods(pd.read_csv(out / "scores_first_seed.csv.gz"), out / "roc.png")
    report = out / "report.md"
    report.write_text(f"# {title}\n\nData: `{config.data}`\n\n{protocol_text(config, seeds, quick, supervised)}\n\n"
                      f"{mean_std_table(rows)}\n\n![ROC](roc.png)\n\nEvery run: [results.csv](results.csv); "
                      f"test scores of the first seed: [scores_first_seed.csv.gz](scores_first_seed.csv.gz).\n")
    return report


def compare(config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
            progress: Callable[[str], None] = print, supervised: bool = True) -> Path:
    """fedcl against every baseline (and the supervised rows), same splits, same run."""
    methods = unsupervised_methods()
    if supervised:
        from fedcl.experiments._supervised import supervised_methods

        methods += supervised_methods()
    return _table_report("fedcl against every baseline", methods, config, seeds, quick, out, progress, supervised)


def ablation(config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
             progress: Callable[[str], None] = print) -> Path:
    """fedcl with each of its parts removed in turn."""
    return _table_report("fedcl ablation", ablation_methods(), config, seeds, quick, out, progress)


def sweep_parameter(param: str, config: FedCLConfig, seeds: Sequence[int], quick: bool, out: Path,
                    progress: Callable[[str], None] = print) -> Path:
    """fedcl's sensitivity to ``lr`` (AUROC) or ``temperature`` (F1)."""
    from fedcl.eval.plots import plot_sweep

    if param not in SWEEPS:
        raise ConfigError(f"unknown sweep {param!r}; choose one of {', '.join(SWEEPS)}")
    grid, metric, log_x = SWEEPS[param]
    results = fresh_results(out, f"sweep_{param}.csv", ("seed", param))
    rows = sweep(param, grid, config, seeds, quick, progress, on_row=results.append)
    rows.to_csv(results.path, index=False)
    import pandas as pd

    plot_sweep(pd.read_csv(results.path), param, metric, out / f"sweep_{param}.png", log_x)
    stats = rows.groupby(param)[metric].agg(["mean", "std"])
    table = "\n".join([f"| {param} | {metric} mean | std |", "|---|---|---|"] +
                      [f"| {v:g} | {r['mean']:.4f} | {r['std']:.4f} |" for v, r in stats.iterrows()])
    report = out / f"sweep_{param}.md"
    report.write_text(f"# {metric} vs {param}\n\nData: `{config.data}`\n\n{protocol_text(config, seeds, quick)}\n\n"
                      f"{table}\n\n![sweep](sweep_{param}.png)\n\nEvery run: [sweep_{param}.csv](sweep_{param}.csv).\n")
    return report
