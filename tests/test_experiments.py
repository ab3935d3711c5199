"""`fedcl experiment ...` in --quick mode: every method runs on the same splits and reports."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from conftest import NBAIOT
from fedcl import experiments
from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.data import DataError
from fedcl.eval.plots import plot_curves
from fedcl.experiments import ablation_methods, shrink, unsupervised_methods
from fedcl.experiments._heterogeneity import (ALPHAS, MIN_BENIGN_ROWS, dirichlet_groups, heterogeneity_methods,
                                              partitions)
from fedcl.experiments._runner import run_methods
from fedcl.pipeline import load_splits

runner = CliRunner()

def test_shrink_keeps_a_small_disjoint_slice(fedmse_slice):
    splits = load_splits(FedCLConfig(data=str(fedmse_slice)))

    small = shrink(splits, seed=0, nodes=2, train=50, held_out=20, attacks=30)

    assert [s.name for s in small] == [s.name for s in splits[:2]]
    assert all(len(s.train) == 50 and len(s.val) == 20 and len(s.test_benign) == 20 for s in small)
    assert all(len(s.attack) == len(s.attack_family) == 30 for s in small)


def test_compare_quick_runs_every_method_and_reports(fedmse_slice, tmp_path):
    result = runner.invoke(app, ["experiment", "compare", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                 "--seeds", "1", "--quick"])

    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "results.csv")
    assert len(rows) == len(unsupervised_methods()) + 4  # + MLP, 1D-CNN, GNN, GAT
    assert set(rows["kind"]) == {"ours", "unsupervised", "centralised", "supervised"}
    ours = rows.set_index("method").loc["fedcl (ours)"]
    assert ours["auroc"] > 0.9
    report = (tmp_path / "report.md").read_text()
    assert "| fedcl (ours) | ours |" in report and "QUICK mode" in report
    assert (tmp_path / "roc.png").stat().st_size > 10_000


# experiments that write a table of their own runs (no resuming): their CSV
TABLES = {experiments.ablation: "results.csv", partial(experiments.sweep_parameter, "lr"): "sweep_lr.csv",
          experiments.heterogeneity: "heterogeneity.csv"}


@pytest.mark.parametrize("run, csv", TABLES.items())
def test_an_interrupted_experiment_keeps_the_rows_of_the_runs_it_finished(run, csv, fedmse_slice, tmp_path):
    (tmp_path / csv).write_text("method,seed\nan earlier run's row,0\n")
    finished = []

    def ctrl_c_after_two(line):
        finished.append(line)
        if len(finished) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(FedCLConfig(data=str(fedmse_slice)), range(1), True, tmp_path, progress=ctrl_c_after_two)

    rows = pd.read_csv(tmp_path / csv)
    # this run's two rows, no other (a progress line ends "<method>: AUROC <value>")
    assert list(rows["method"]) == [line.split(": ")[-2] for line in finished]
    assert rows["auroc"].between(0, 1).all()


@pytest.mark.parametrize("run, csv", TABLES.items())
def test_a_rerun_that_fails_before_its_first_row_keeps_the_earlier_rows(run, csv, tmp_path):
    earlier = "method,seed\nan earlier run's row,0\n"
    (tmp_path / csv).write_text(earlier)

    with pytest.raises(DataError, match="does not exist"):
        run(FedCLConfig(data=str(tmp_path / "no such data")), range(1), True, tmp_path, progress=print)

    assert (tmp_path / csv).read_text() == earlier


def test_ablation_and_sweep_quick(fedmse_slice, tmp_path):
    ablation = runner.invoke(app, ["experiment", "ablation", "--data", str(fedmse_slice), "--out",
                                   str(tmp_path / "a"), "--seeds", "1", "--quick"])
    sweep = runner.invoke(app, ["experiment", "sweep", "temperature", "--data", str(fedmse_slice), "--out",
                                str(tmp_path / "s"), "--seeds", "1", "--quick"])
    unknown = runner.invoke(app, ["experiment", "sweep", "momentum", "--data", str(fedmse_slice)])

    assert ablation.exit_code == 0, ablation.output
    assert len(pd.read_csv(tmp_path / "a" / "results.csv")) == len(ablation_methods())
    assert sweep.exit_code == 0, sweep.output
    swept = pd.read_csv(tmp_path / "s" / "sweep_temperature.csv")
    assert swept["temperature"].nunique() == 7 and swept["f1"].between(0, 1).all()
    assert (tmp_path / "s" / "sweep_temperature.png").is_file()
    assert unknown.exit_code == 2 and "momentum" in unknown.output


def test_heterogeneity_quick_runs_every_partition_method_and_seed(fedmse_slice, tmp_path):
    result = runner.invoke(app, ["experiment", "heterogeneity", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                 "--seeds", "1", "--quick"])

    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "heterogeneity.csv")
    labels = [p.label for p in partitions("clusters")]
    methods = [m.name for m in heterogeneity_methods()]
    assert list(pd.unique(rows["partition"])) == labels  # the order of the x axis
    assert sorted(zip(rows["partition"], rows["method"], rows["seed"])) == sorted(
        (label, method, 0) for label in labels for method in methods)
    assert rows["auroc"].between(0.5, 1).all()
    assert rows["worst_node_auroc"].between(0, 1).all()
    dirichlet = rows["partition"].str.startswith("Dirichlet")
    assert sorted(set(rows.loc[dirichlet, "alpha"])) == sorted(ALPHAS)
    assert rows.loc[~dirichlet, "alpha"].isna().all()
    report = (tmp_path / "heterogeneity.md").read_text()
    assert all(f"| {label} | {method} |" in report for label in labels for method in methods)
    assert "QUICK mode" in report and "k-means" in report and "![heterogeneity](heterogeneity.png)" in report
    assert (tmp_path / "heterogeneity.png").stat().st_size > 10_000


def test_worst_node_auroc_is_the_lowest_node_auroc(fedmse_slice, one_torch_thread):
    alpha_01 = partitions("clusters")[ALPHAS.index(0.1) + 1]

    # seed 1: its nodes differ (on seed 0's deal every node scores a perfect 1.0)
    rows, scores = run_methods(heterogeneity_methods()[:1], FedCLConfig(data=str(fedmse_slice)), [1], quick=True,
                               progress=lambda _: None, make_splits=alpha_01.make_splits)

    per_node = [roc_auc_score(df["label"], df["score"]) for _, df in scores["fedcl (ours)"].groupby("node")]
    assert len(per_node) == 3
    assert rows.loc[0, "worst_node_auroc"] == pytest.approx(min(per_node), abs=1e-4)
    assert rows.loc[0, "worst_node_auroc"] < max(per_node)


def test_partition_is_redrawn_per_seed_with_enough_benign_rows(fedmse_slice):
    alpha_01 = partitions("clusters")[ALPHAS.index(0.1) + 1]
    config = FedCLConfig(data=str(fedmse_slice))

    a, b, c = (alpha_01.make_splits(config.updated(seed=seed)) for seed in (0, 0, 1))

    assert all(np.array_equal(x.train, y.train, equal_nan=True) for x, y in zip(a, b))  # real rows hold NaN
    assert not all(np.array_equal(x.train, z.train, equal_nan=True) for x, z in zip(a, c))
    assert min(len(s.train) + len(s.val) for s in a + c) >= MIN_BENIGN_ROWS
    assert dirichlet_groups(config) == "clusters"
    assert dirichlet_groups(FedCLConfig(data=str(NBAIOT / "uci-sample"))) == "source"


def test_plot_curves_draws_a_panel_grid(tmp_path):
    rng = np.random.default_rng(0)
    rows = pd.DataFrame([{"attack": attack, "malicious": m, "aggregator": agg, "seed": seed,
                          "auroc": rng.uniform(0.8, 1.0), "f1": rng.uniform(0.5, 1.0)}
                         for attack in ("sign flip", "scaling") for m in (0, 2, 1)
                         for agg in ("fedavg", "median", "krum") for seed in range(3)
                         if not (attack == "scaling" and agg == "krum")])  # a line missing from one panel

    out = plot_curves(rows, "malicious", ["auroc", "f1"], tmp_path / "grid.png", line="aggregator",
                      panel="attack", title="attacks")

    assert out == tmp_path / "grid.png"
    assert out.stat().st_size > 10_000
