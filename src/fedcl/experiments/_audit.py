"""`fedcl experiment audit`: membership inference against what a node releases, ε by ε.

For each benchmark cell, ε and seed, fedcl trains through the federation's encoder alone
(personalisation off: the node's own encoder never leaves it) while a curious server watches every
update, and the attacks of :mod:`fedcl.privacy.audit` try to tell each node's training rows from its
held-out benign rows: the loss and the agreement of two augmented views under the final encoder, and
the drop in loss from the initial encoder to the final one (what any holder of the released model can
run), the drop in loss across the node's update and the
tracing correlation with its released mean embedding μ_i (what the server can run). Two controls
measure what the figures read when no membership is there to find: the loss under the initial
encoder (no row trained it: any separation is a difference between the row sets), and two halves of
the held-out rows scored against each other under the final encoder (the metrics' chance level at
this many rows). Runs are appended to ``results.csv`` one (cell, ε, seed) at a time, so an
interrupted run resumes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.data import NodeSplit
from fedcl.experiments._benchmark import cell_splits, named_cells, report_seed_rows
from fedcl.experiments._privacy import check_epsilons
from fedcl.experiments._resume import ResultsFile, claim_folder
from fedcl.experiments._runner import QUICK_ROUNDS, mean_std, one_torch_thread
from fedcl.federated import run_federation
from fedcl.model import initial_encoder
from fedcl.pipeline import scaled_training_rows, trained_encoder
from fedcl.privacy.audit import (
    AuditRows,
    CuriousServer,
    audit_rows,
    dp_advantage_bound,
    encoder_loss_scores,
    loss_drop_scores,
    membership_metrics,
    view_alignment,
)

EPSILONS = (1.0, 8.0, math.inf)
QUICK_EPSILONS = (8.0, math.inf)
ENCODER_LOSS = "encoder loss"
ENCODER_ALIGNMENT = "encoder view alignment"
ENCODER_CALIBRATED = "encoder loss drop from θ_0"
INITIAL_CONTROL = "control: initial encoder loss"
HELD_OUT_CONTROL = "control: held-out vs held-out"
ATTACKS = (ENCODER_LOSS, ENCODER_ALIGNMENT, ENCODER_CALIBRATED, "update loss drop, last round",
           "update loss drop, all rounds", "tracing on μ_i, last round", "tracing on μ_i, all rounds",
           INITIAL_CONTROL, HELD_OUT_CONTROL)
METRICS = ("auroc", "advantage", "tpr_at_1pct_fpr")
RESULTS = "results.csv"
KEY = ["data", "cell", "epsilon", "seed", "attack"]
COLUMNS = [*KEY, *(f"{how}_{m}" for m in METRICS for how in ("mean", "max")), "bound", "epsilon_spent",
           "members_per_node", "nodes", "seconds"]
_LOSS_SEED = 16_005  # the seed of the attacker's augmentation draws


def audit(config: FedCLConfig, datas: Sequence[str], seeds: Sequence[int], quick: bool, out: Path,
          epsilons: Sequence[float] | None = None, only: Sequence[str] | None = None,
          progress: Callable[[str], None] = print) -> Path:
    """Run every (cell, ε, seed) whose attacks are not all in ``out/results.csv``; then audit.md and audit.png.

    ``only``: cell names (default: natural). ``epsilons`` default to :data:`EPSILONS`
    (:data:`QUICK_EPSILONS` quick); inf trains in the clear.
    """
    epsilons = list(epsilons or (QUICK_EPSILONS if quick else EPSILONS))
    check_epsilons(epsilons)
    wanted = list(only or ("natural",))
    plan = named_cells(datas, quick, wanted)
    claim_folder(out / RESULTS, config, quick, sets=("dp_epsilon", "dp_level", "dp_sample_rate", "personalisation"))
    results = ResultsFile(out / RESULTS, KEY, COLUMNS)
    done = {tuple(str(v) for v in key) for key in results.done()}
    with one_torch_thread():
        for cell in plan:
            for seed in seeds:
                base = config.updated(data=cell.data, seed=seed, rounds=QUICK_ROUNDS if quick else None,
                                      personalisation="off", dp_level="record", dp_sample_rate=1.0)
                todo = {e: [a for a in ATTACKS if (cell.data, cell.name, str(e), str(seed), a) not in done]
                        for e in epsilons}
                todo = {e: attacks for e, attacks in todo.items() if attacks}
                splits = cell_splits(cell, base, quick) if todo else []
                for epsilon, attacks in todo.items():
                    rows = audit_run(splits, base.updated(dp_epsilon=epsilon))
                    for row in rows:
                        if row["attack"] in attacks:
                            results.append({"data": cell.data, "cell": cell.name, "epsilon": epsilon, "seed": seed,
                                             **row})
                    found = max(r["mean_advantage"] for r in rows if not r["attack"].startswith("control"))
                    progress(f"{Path(cell.data).name} | {cell.name} | seed {seed} | ε {epsilon:g}: largest mean "
                             f"advantage {found:.4f} (bound {rows[0]['bound']:.4f})")
    return write_audit_report(out, results.rows())


def audit_run(splits: list[NodeSplit], config: FedCLConfig) -> list[dict]:
    """Train one federation as ``config`` says, under a curious server; one result row per attack.

    Each row holds the mean and max over nodes of each attack's AUROC, advantage and TPR at FPR 0.01
    (:func:`fedcl.privacy.audit.membership_metrics`), and the ε-DP bound on the advantage.
    """
    start = time.perf_counter()
    n_features = splits[0].train.shape[1]
    rows = {s.name: audit_rows(s, config) for s in splits}
    server = CuriousServer(initial_encoder(config, n_features), rows, config, seed=_LOSS_SEED)
    result = run_federation({s.name: scaled_training_rows(s, config) for s in splits}, config, on_updates=server)
    final, initial = trained_encoder(config, result.arrays, n_features), initial_encoder(config, n_features)
    scores = {**server.scores_,
              ENCODER_LOSS: {n: encoder_loss_scores(final, r.candidates, config, _LOSS_SEED) for n, r in rows.items()},
              ENCODER_ALIGNMENT: {n: view_alignment(final, r.candidates, config, _LOSS_SEED) for n, r in rows.items()},
              ENCODER_CALIBRATED: {n: loss_drop_scores(initial, final, r.candidates, config, _LOSS_SEED)
                                   for n, r in rows.items()},
              INITIAL_CONTROL: {n: encoder_loss_scores(initial, r.candidates, config, _LOSS_SEED)
                                for n, r in rows.items()}}
    held_out = {n: AuditRows(r.non_members, r.reference[: len(r.non_members)], r.reference) for n, r in rows.items()}
    per_node = {attack: {n: membership_metrics(rows[n].is_member, s) for n, s in scores[attack].items()}
                for attack in ATTACKS if attack != HELD_OUT_CONTROL}
    per_node[HELD_OUT_CONTROL] = {
        n: membership_metrics(h.is_member, encoder_loss_scores(final, h.candidates, config, _LOSS_SEED))
        for n, h in held_out.items()}
    spent = [r["epsilon"] for r in result.history if "epsilon" in r]
    common = {"bound": dp_advantage_bound(config.dp_epsilon, config.dp_delta),
              "epsilon_spent": max(spent) if spent else math.inf,
              "members_per_node": float(np.mean([len(r.members) for r in rows.values()])), "nodes": len(rows),
              "seconds": time.perf_counter() - start}
    return [{"attack": attack, **_over_nodes(list(per_node[attack].values())), **common} for attack in ATTACKS]


def _over_nodes(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Mean and max over nodes of each metric."""
    return {f"{how}_{m}": float(f([node[m] for node in metrics])) for m in METRICS
            for how, f in (("mean", np.mean), ("max", np.max))}


def _audit_table(rows: pd.DataFrame) -> str:
    """Per data, cell, ε and attack: the figures over nodes (mean ± std over seeds) and the bound."""
    lines = ["| data | cell | ε | attack | AUROC (mean over nodes) | advantage (mean) | advantage (max) | "
             "TPR@1%FPR (mean) | ε-DP bound | seeds |", "|---" * 10 + "|"]
    for (data, cell, epsilon, attack), runs in rows.groupby(["data", "cell", "epsilon", "attack"], sort=False):
        lines.append(f"| {data} | {cell} | {epsilon:g} | {attack} | {mean_std(runs['mean_auroc'])} | "
                     f"{mean_std(runs['mean_advantage'])} | {mean_std(runs['max_advantage'])} | "
                     f"{mean_std(runs['mean_tpr_at_1pct_fpr'])} | {runs['bound'].iloc[0]:.4f} | {len(runs)} |")
    return "\n".join(lines)


def write_audit_report(out: Path, rows: pd.DataFrame) -> Path:
    """audit.md (tables over the report seeds, or the development seed if no other ran) and audit.png."""
    from fedcl.eval.plots import plot_curves

    rows = rows.assign(data=rows["data"].map(lambda d: Path(d).name), epsilon=rows["epsilon"].astype(float))
    rows = rows.assign(attack=pd.Categorical(rows["attack"], categories=ATTACKS))
    shown, which = report_seed_rows(rows)
    shown = shown.sort_values(["epsilon", "attack"], kind="stable")
    shown = shown.assign(attack=shown["attack"].astype(str))
    # The bound as one more line: what no attack may exceed at that ε (1 in the clear).
    bound = shown.drop_duplicates(["data", "cell", "epsilon", "seed"]).assign(
        attack="ε-DP bound", mean_advantage=lambda df: df["bound"], max_advantage=lambda df: df["bound"])
    plotted = pd.concat([shown, bound], ignore_index=True)
    plot_curves(plotted.assign(ε=plotted["epsilon"].map(lambda e: f"{e:g}"),
                               cell=plotted["data"] + " | " + plotted["cell"]),
                "ε", ["mean_advantage", "max_advantage"], out / "audit.png", line="attack", panel="cell",
                title=f"Membership inference, {which}: advantage over nodes, mean ± std over seeds")
    text = f"""# Membership-inference audit

Each (cell, ε, seed) trains the federation's encoder alone (personalisation off) under a curious server.
Attacks: the loss and the two views' agreement under the final encoder, and the drop in loss from
the initial encoder θ_0 to the final one (anyone holding the released model); the drop in loss across
a node's update and the tracing correlation with its released mean embedding μ_i (the server), in the
last round or summed over rounds. Controls: the loss under the initial encoder (no row trained it) and
two halves of the held-out rows scored against each other (no membership to find: chance level).

Members: a random subset of each node's training rows, as many as the scored non-members (half its
held-out benign rows; the other half is the attacker's reference). The attacker is given the node's
input scaling (an upper bound on a real attacker). Advantage is max over thresholds of TPR − FPR, with
the threshold chosen on the scored rows (the attacker's best case); the ε-DP bound is
(e^ε − 1 + 2δ)/(e^ε + 1). Figures are the mean (and max) over nodes; tables on {which}.

{_audit_table(shown)}

![audit](audit.png)

Every run: [{RESULTS}]({RESULTS}).
"""
    report = out / "audit.md"
    report.write_text(text)
    return report
