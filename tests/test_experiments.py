"""`fedcl experiment ...` in --quick mode: every method runs on the same splits and reports."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from conftest import needs_nbaiot
from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.experiments import ablation_methods, shrink, unsupervised_methods
from fedcl.pipeline import load_splits

runner = CliRunner()
pytestmark = needs_nbaiot


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
