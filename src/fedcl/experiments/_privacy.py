"""`fedcl experiment privacy`: what record-level differential privacy costs in detection, ε by ε.

For each benchmark cell (natural, and for unlabelled client folders the device-like deals), seed and ε,
fedcl trains with DP-SGD calibrated for the whole run (:mod:`fedcl.privacy.dp`; ε = inf: in the clear)
and is scored two ways on the same splits: through the federation's encoder alone — the model every
node's released updates built, the figure the privacy guarantee is about — and as the personalised
detector of the run's ``personalisation`` (labelled with it), whose personal views, encoders each node
trains on its own rows, never leave the node and train in the clear. Runs are appended to
``results.csv`` one by one, so an interrupted run resumes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.experiments._benchmark import cell_splits, named_cells, report_seed_rows, run_cell
from fedcl.experiments._methods import Method, fedcl_method
from fedcl.experiments._resume import ResultsFile, claim_folder
from fedcl.experiments._runner import QUICK_ROUNDS, mean_std, one_torch_thread

EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
QUICK_EPSILONS = (1.0, math.inf)
DEFAULT_CELLS = ("natural", "home clusters", "Dirichlet α=0.5", "Dirichlet α=0.1")
RESULTS = "results.csv"
KEY = ["data", "cell", "epsilon", "view", "seed"]
COLUMNS = [*KEY, "auroc", "fpr_at_tpr99", "worst_node_auroc", "own_benign_fpr", "seconds"]


def shared_and_personal(config: FedCLConfig) -> dict[str, str]:
    """Label -> personalisation: the federation's encoder alone (what crosses the wire, what DP protects),
    then the detector ``config`` personalises, labelled by its rule, so that a rerun under another
    personalisation does not resume the rows of this one."""
    views = {"federation's encoder only": "off"}
    if config.personalisation != "off":
        views[f"personalised detector ({config.personalisation})"] = config.personalisation
    return views


def check_epsilons(epsilons: Sequence[float]) -> None:
    """ConfigError for an ε that is not positive (inf: in the clear)."""
    bad = [e for e in epsilons if not e > 0]
    if bad:
        raise ConfigError(f"--epsilons must be positive (inf: no differential privacy), got {bad}")


def privacy(config: FedCLConfig, datas: Sequence[str], seeds: Sequence[int], quick: bool, out: Path,
            epsilons: Sequence[float] | None = None, only: Sequence[str] | None = None,
            progress: Callable[[str], None] = print) -> Path:
    """Run every (cell, ε, view, seed) not yet in ``out/results.csv``; then privacy.md and privacy.png.

    ``only``: cell names (default: natural and the device-like deals, :data:`DEFAULT_CELLS`; with
    ``quick`` natural alone). ``epsilons`` default to :data:`EPSILONS` (:data:`QUICK_EPSILONS` quick).
    """
    epsilons = list(epsilons or (QUICK_EPSILONS if quick else EPSILONS))
    check_epsilons(epsilons)
    wanted = list(only or (("natural",) if quick else DEFAULT_CELLS))
    plan = named_cells(datas, quick, wanted)
    claim_folder(out / RESULTS, config, quick, sets=("dp_epsilon", "dp_level", "dp_sample_rate", "personalisation"))
    results = ResultsFile(out / RESULTS, KEY, COLUMNS)
    done = {tuple(str(v) for v in key) for key in results.done()}
    with one_torch_thread():
        for cell in plan:
            for seed in seeds:
                cfg = config.updated(data=cell.data, seed=seed, rounds=QUICK_ROUNDS if quick else None,
                                     dp_level="record", dp_sample_rate=1.0)  # whatever a --config says
                views = shared_and_personal(cfg)
                todo = [(e, view) for e in epsilons for view in views
                        if (cell.data, cell.name, str(e), view, str(seed)) not in done]
                splits = cell_splits(cell, cfg, quick) if todo else []
                for epsilon, view in todo:
                    method = Method(view, "ablation", fedcl_method(dp_epsilon=epsilon, personalisation=views[view]))
                    row = run_cell(cell, method, cfg, splits)
                    results.append({**row, "epsilon": epsilon, "view": view})
                    progress(f"{Path(cell.data).name} | {cell.name} | seed {seed} | ε {epsilon:g} | {view}: "
                             f"AUROC {row['auroc']:.4f}, FPR@TPR0.99 {row['fpr_at_tpr99']:.4f}")
    return write_privacy_report(out, results.rows())


def _cost_table(rows: pd.DataFrame) -> str:
    """Per data, cell and view: AUROC and FPR@TPR0.99 (mean ± std over seeds) per ε, and AUROC lost against ε = inf."""
    lines = ["| data | cell | view | ε | AUROC | FPR@TPR0.99 | AUROC lost | seeds |", "|---" * 8 + "|"]
    for (data, cell, view), df in rows.groupby(["data", "cell", "view"], sort=False):
        clear = df[df["epsilon"] == math.inf]["auroc"].mean()
        for epsilon, runs in df.groupby("epsilon"):
            lost = f"{clear - runs['auroc'].mean():+.4f}" if not math.isnan(clear) else "—"
            lines.append(f"| {data} | {cell} | {view} | {epsilon:g} | {mean_std(runs['auroc'])} | "
                         f"{mean_std(runs['fpr_at_tpr99'])} | {lost} | {len(runs)} |")
    return "\n".join(lines)


def plain_markdown(docstring: str) -> str:
    """A docstring's reST as Markdown: roles and double backquotes become code spans."""
    return re.sub(r":\w+:`([^`]+)`", r"`\1`", docstring).replace("``", "`")


def write_privacy_report(out: Path, rows: pd.DataFrame) -> Path:
    """privacy.md (tables over the report seeds, or the development seed if no other ran) and privacy.png."""
    from fedcl.eval.plots import plot_curves

    rows = rows.assign(data=rows["data"].map(lambda d: Path(d).name), epsilon=rows["epsilon"].astype(float))
    shown, which = report_seed_rows(rows)
    shown = shown.sort_values("epsilon", kind="stable")
    plot_curves(shown.assign(ε=shown["epsilon"].map(lambda e: f"{e:g}"), cell=shown["data"] + " | " + shown["cell"]),
                "ε", ["auroc", "fpr_at_tpr99"], out / "privacy.png", line="view", panel="cell",
                title=f"Record-level DP, {which}: mean ± std over seeds")
    text = f"""# What record-level differential privacy costs

{plain_markdown(__doc__.split(chr(10), 2)[2].strip())}

ε per node for the whole run, δ as configured (default 1e-5); the accountant, the mechanism and what
each released statistic costs: docs/privacy.md in the fedcl repository. Tables on {which}.

{_cost_table(shown)}

![privacy](privacy.png)

Every run: [{RESULTS}]({RESULTS}).
"""
    report = out / "privacy.md"
    report.write_text(text)
    return report
