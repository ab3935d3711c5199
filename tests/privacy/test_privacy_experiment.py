"""`fedcl experiment privacy` in --quick mode: one row per (cell, ε, view, seed), a report, resuming."""

from __future__ import annotations

import math

import pandas as pd
from typer.testing import CliRunner

from fedcl.cli import app

runner = CliRunner()


def test_quick_privacy_experiment_writes_every_run_then_resumes(fedmse_slice, tmp_path):
    # Prepare
    command = ["experiment", "privacy", "--data", str(fedmse_slice), "--out", str(tmp_path), "--quick",
               "--seeds", "1", "--epsilons", "2,inf"]

    # Execute: the whole grid, then the same command again
    first = runner.invoke(app, command)
    written = (tmp_path / "results.csv").read_text()
    again = runner.invoke(app, command)

    # Assert: 2 ε × 2 views on the natural cell; DP costs the shared view something; nothing re-ran
    assert first.exit_code == 0, first.output
    rows = pd.read_csv(tmp_path / "results.csv")
    assert sorted(zip(rows["epsilon"], rows["view"])) == sorted(
        (e, v) for e in (2.0, math.inf) for v in ("federation's encoder only", "personalised detector (tuned)"))
    assert set(rows["cell"]) == {"natural"} and rows["auroc"].between(0.5, 1).all()
    shared = rows[rows["view"] == "federation's encoder only"].set_index("epsilon")["auroc"]
    assert shared[2.0] < shared[math.inf]
    assert (tmp_path / "privacy.png").stat().st_size > 0
    assert "| natural | federation's encoder only | 2 |" in (tmp_path / "privacy.md").read_text()
    assert again.exit_code == 0 and (tmp_path / "results.csv").read_text() == written


def test_bad_epsilons_and_cells_exit_2_in_one_line(fedmse_slice, tmp_path):
    for extra, message in ((["--epsilons", "0,1"], "--epsilons must be positive"),
                           (["--epsilons", "one"], "comma-separated floats"),
                           (["--cell", "nope"], "no cell named nope")):
        result = runner.invoke(app, ["experiment", "privacy", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                     "--quick", *extra])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
