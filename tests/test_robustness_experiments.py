"""`fedcl experiment corruption | attacks` in --quick mode, and the corruptions they apply."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.data import FEATURE_GROUPS
from fedcl.experiments._attacks import AGGREGATORS, ATTACKS, QUICK_MALICIOUS
from fedcl.experiments._corruption import CORRUPTIONS, MISSING_GROUP, corrupt, corruption_methods
from fedcl.pipeline import load_splits

runner = CliRunner()

@pytest.fixture(scope="module")
def splits(fedmse_slice):
    return load_splits(FedCLConfig(data=str(fedmse_slice)))


def test_mcar_hits_every_row_set_of_every_node(splits):
    before = [np.isnan(s.train).mean() for s in splits]

    out = corrupt(splits, "missing cells (MCAR)", 0.3, seed=0)

    for s, b in zip(out, before):
        for rows in (s.train, s.val, s.test_benign, s.attack):
            assert np.isnan(rows).mean() == pytest.approx(b + 0.3 * (1 - b), abs=0.03)
    assert corrupt(splits, "missing cells (MCAR)", 0.0, seed=0) is splits


def test_stream_group_goes_missing_on_the_share_of_nodes_asked(splits):
    out = corrupt(splits, f"{MISSING_GROUP} streams missing on some nodes", 0.5, seed=0)

    hit = [np.isnan(s.attack[:, FEATURE_GROUPS[MISSING_GROUP]]).all() for s in out]
    assert sum(hit) == max(1, round(0.5 * len(splits)))
    untouched = [s for s, h in zip(out, hit) if not h]
    assert all(np.isnan(s.train[:, FEATURE_GROUPS[MISSING_GROUP]]).mean() < 0.5 for s in untouched)


def test_contamination_moves_attack_rows_out_of_the_test_rows(splits):
    out = corrupt(splits, "attack rows in benign training", 0.05, seed=0)

    for s, c in zip(splits, out):
        added = len(c.train) - len(s.train) + len(c.val) - len(s.val)
        assert added > 0 and len(c.attack) == len(s.attack) - added == len(c.attack_family)
        assert (len(c.train) - len(s.train)) / len(c.train) == pytest.approx(0.05, abs=0.01)


def test_unknown_corruption_is_a_clear_error(splits):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(splits, "cosmic rays", 0.1, seed=0)


def test_corruption_quick_reports_every_kind_level_and_method(fedmse_slice, tmp_path):
    result = runner.invoke(app, ["experiment", "corruption", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                 "--seeds", "1", "--quick"])

    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "corruption.csv")
    for kind, (levels, _) in CORRUPTIONS.items():
        df = rows[rows["corruption"] == kind]
        assert sorted(df["level"].unique()) == [0.0, *levels]
        assert len(df) == (len(levels) + 1) * len(corruption_methods())
    assert rows["auroc"].between(0, 1).all()
    assert (tmp_path / "corruption.png").stat().st_size > 10_000
    assert "missing cells (MCAR)" in (tmp_path / "corruption.md").read_text()


def test_attacks_quick_reports_every_rule_attack_count_and_dropout(fedmse_slice, tmp_path):
    result = runner.invoke(app, ["experiment", "attacks", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                 "--seeds", "1", "--quick"])

    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "attacks.csv")
    attacked = rows[rows["dropout"] == 0]
    assert set(attacked["aggregator"]) == set(AGGREGATORS) and set(attacked["attack"]) == set(ATTACKS)
    assert len(attacked) == len(AGGREGATORS) * len(ATTACKS) * len(QUICK_MALICIOUS)
    assert sorted(rows.loc[rows["dropout"] > 0, "aggregator"]) == sorted(AGGREGATORS)
    assert rows["auroc"].between(0, 1).all()
    # The k = 0 point of every attack is the same clean run.
    clean = attacked[attacked["malicious"] == 0].groupby("aggregator")["auroc"].nunique()
    assert (clean == 1).all()
    assert "worst loss" in (tmp_path / "attacks.md").read_text()


def test_attacks_runs_only_the_rules_asked_for_and_refuses_unknown_ones(fedmse_slice, tmp_path):
    unknown = runner.invoke(app, ["experiment", "attacks", "--data", str(fedmse_slice), "--rules", "dynamic,mean"])
    assert unknown.exit_code == 2 and "mean" in unknown.output

    result = runner.invoke(app, ["experiment", "attacks", "--data", str(fedmse_slice), "--out", str(tmp_path),
                                 "--seeds", "1", "--quick", "--rules", "dynamic-guarded"])

    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "attacks.csv")["aggregator"]) == {"dynamic-guarded"}
