"""`fedcl experiment corruption | attacks` in --quick mode, the corruptions and poisoning they apply,
and their resumable results.csv."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.data import FEATURE_GROUPS, NodeSplit
from fedcl.errors import ConfigError
from fedcl.experiments._attacks import _poisoned, check_attack_grid, default_target_family
from fedcl.experiments._corruption import CORRUPTIONS, MISSING_GROUP, corrupt, corruption_methods
from fedcl.pipeline import load_splits

from conftest import NBAIOT

runner = CliRunner()


@pytest.fixture(scope="module")
def splits(fedmse_slice):
    return load_splits(FedCLConfig(data=str(fedmse_slice)))


@pytest.fixture(scope="module")
def family_network(tmp_path_factory):
    """Three devices in the UCI layout, from the real rows of tests/nbaiot/uci-sample: Danmini's benign
    rows in three capture-order thirds, and every attack file dealt a third to each device, so every
    device has rows of the families gafgyt.scan, gafgyt.udp and mirai.udp."""
    root = tmp_path_factory.mktemp("family-network")
    sample = NBAIOT / "uci-sample"
    attacks = {"gafgyt_attacks/scan.csv": "Danmini_Doorbell", "gafgyt_attacks/udp.csv": "Danmini_Doorbell",
               "mirai_attacks/udp.csv": "Ecobee_Thermostat"}

    def thirds(frame):  # in file (capture) order
        return [frame.iloc[k * len(frame) // 3:(k + 1) * len(frame) // 3] for k in range(3)]

    benign = thirds(pd.read_csv(sample / "Danmini_Doorbell/benign_traffic.csv"))
    parts = {f: thirds(pd.read_csv(sample / device / f)) for f, device in attacks.items()}
    for i in range(3):
        device = root / f"Device_{i + 1}"
        (device / "gafgyt_attacks").mkdir(parents=True)
        (device / "mirai_attacks").mkdir()
        benign[i].to_csv(device / "benign_traffic.csv", index=False)
        for f in attacks:
            parts[f][i].to_csv(device / f, index=False)
    return root


# --- corruption -------------------------------------------------------------------------------------


def test_mcar_hits_every_row_set_of_every_node(splits):
    before = [np.isnan(s.train).mean() for s in splits]

    out = corrupt(splits, "mcar", 0.3, seed=0)

    for s, b in zip(out, before):
        for rows in (s.train, s.val, s.test_benign, s.attack):
            assert np.isnan(rows).mean() == pytest.approx(b + 0.3 * (1 - b), abs=0.03)
    assert corrupt(splits, "mcar", 0.0, seed=0) is splits


def test_stream_group_goes_missing_on_the_share_of_nodes_asked(splits):
    out = corrupt(splits, "missing-streams", 0.5, seed=0)

    hit = [np.isnan(s.attack[:, FEATURE_GROUPS[MISSING_GROUP]]).all() for s in out]
    assert sum(hit) == max(1, round(0.5 * len(splits)))
    untouched = [s for s, h in zip(out, hit) if not h]
    assert all(np.isnan(s.train[:, FEATURE_GROUPS[MISSING_GROUP]]).mean() < 0.5 for s in untouched)


def test_contamination_moves_attack_rows_out_of_the_test_rows(splits):
    out = corrupt(splits, "contamination", 0.05, seed=0)

    for s, c in zip(splits, out):
        added = len(c.train) - len(s.train) + len(c.val) - len(s.val)
        assert added > 0 and len(c.attack) == len(s.attack) - added == len(c.attack_family)
        assert (len(c.train) - len(s.train)) / len(c.train) == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_every_kind_changes_the_rows_by_its_name_and_by_its_title(splits, kind):
    level = CORRUPTIONS[kind].levels[-1]

    by_name = corrupt(splits, kind, level, seed=0)
    by_title = corrupt(splits, CORRUPTIONS[kind].title, level, seed=0)

    assert any(not np.array_equal(a.train, b.train, equal_nan=True) for a, b in zip(splits, by_name))
    assert all(np.array_equal(a.train, b.train, equal_nan=True) for a, b in zip(by_name, by_title))


@pytest.mark.parametrize("kind, level", [("cosmic rays", 0.1), ("contamination", 1.0), ("mcar", -0.1),
                                         ("noise", -1.0)])
def test_unknown_corruption_or_level_out_of_range_is_a_clear_error(splits, kind, level):
    with pytest.raises(ConfigError, match="unknown corruption|level"):
        corrupt(splits, kind, level, seed=0)


@pytest.fixture(scope="module")
def corruption_run(fedmse_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("corruption")
    result = runner.invoke(app, ["experiment", "corruption", "--data", str(fedmse_slice), "--out", str(out),
                                 "--kinds", "contamination", "--levels", "0,0.05", "--seeds", "1", "--quick"])
    assert result.exit_code == 0, result.output
    return out


def test_corruption_quick_writes_one_row_per_method_level_and_seed(corruption_run):
    rows = pd.read_csv(corruption_run / "results.csv")

    assert {"method", "kind", "level", "seed", "auroc", "fpr_at_tpr99"} <= set(rows.columns)
    assert len(rows) == 2 * len(corruption_methods())
    assert sorted(rows["level"].unique()) == [0.0, 0.05] and set(rows["kind"]) == {"contamination"}
    assert "fedcl (ours)" in set(rows["method"])
    assert rows["auroc"].between(0, 1).all()
    assert (corruption_run / "corruption.png").stat().st_size > 10_000
    assert "attack rows in benign training" in (corruption_run / "corruption.md").read_text()


def test_corruption_resumes_running_only_what_is_missing(corruption_run, fedmse_slice, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(corruption_run, out)
    rows = pd.read_csv(out / "results.csv")
    rows.loc[rows["method"] == "fedcl (ours)", "auroc"] = 0.123  # runs that must not be redone
    rows = rows[~((rows["method"] == "k-NN per node") & (rows["level"] == 0.05))]
    rows.to_csv(out / "results.csv", index=False)  # as if interrupted before the k-NN run at 0.05

    def rerun(*args):
        result = runner.invoke(app, ["experiment", "corruption", "--data", str(fedmse_slice), "--out", str(out),
                                     "--seeds", "1", "--quick", *args])
        assert result.exit_code == 0, result.output
        return pd.read_csv(out / "results.csv")

    again = rerun("--kinds", "contamination", "--levels", "0,0.05")
    assert len(again) == len(rows) + 1 and (again.loc[again["method"] == "fedcl (ours)", "auroc"] == 0.123).all()
    assert again.iloc[-1]["method"] == "k-NN per node" and again.iloc[-1]["level"] == 0.05

    # Another kind's level 0 is the same clean run: copied, not run again (the marked AUROC comes along).
    with_mcar = rerun("--kinds", "mcar", "--levels", "0")
    mcar = with_mcar[with_mcar["kind"] == "mcar"].set_index("method")
    clean = with_mcar[(with_mcar["kind"] == "contamination") & (with_mcar["level"] == 0)].set_index("method")
    assert len(mcar) == len(corruption_methods()) and mcar.loc["fedcl (ours)", "auroc"] == 0.123
    pd.testing.assert_series_equal(mcar["seconds"], clean["seconds"])


def test_a_rerun_with_other_settings_is_refused_not_mixed_in(corruption_run, fedmse_slice, tmp_path):
    # Prepare: the quick run's folder, and a config that changes one key
    out = tmp_path / "again"
    shutil.copytree(corruption_run, out)
    before = (out / "results.csv").read_text()
    lr = tmp_path / "lr.toml"
    lr.write_text("lr = 0.05\n")

    # Execute: the same cells without --quick, then quick with the other lr
    said = []
    for extra in ([], ["--quick", "--config", str(lr)]):
        result = runner.invoke(app, ["experiment", "corruption", "--data", str(fedmse_slice), "--out", str(out),
                                     "--seeds", "1", "--kinds", "contamination", "--levels", "0,0.05", *extra])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        said.append(result.output)

    # Assert: refused in one line each, naming what differs; not one row added
    assert "other settings (quick True → False)" in said[0] and "lr 0.001 → 0.05" in said[1]
    assert all(len(text.strip().splitlines()) == 1 for text in said)
    assert (out / "results.csv").read_text() == before


def test_settings_bind_a_folder_once_it_holds_rows_and_only_in_the_keys_runs_do_not_set(tmp_path):
    from fedcl.experiments._resume import SETTINGS, claim_folder

    results = tmp_path / "results.csv"

    # A folder without rows (a run stopped before its first) takes any settings
    claim_folder(results, FedCLConfig(), quick=True)
    claim_folder(results, FedCLConfig(), quick=False)

    # Rows written before settings were recorded are taken, and the settings recorded
    results.write_text("method,seed,auroc\nk-NN per node,0,0.9\n")
    claim_folder(results, FedCLConfig(dp_epsilon=float("inf")), quick=False)
    assert json.loads((tmp_path / SETTINGS).read_text())["dp_epsilon"] == "inf"  # plain JSON

    # From then on: other settings are refused; data, seed and the keys the experiment sets are not settings
    with pytest.raises(ConfigError, match="quick False → True"):
        claim_folder(results, FedCLConfig(), quick=True)
    with pytest.raises(ConfigError, match="dp_epsilon 'inf' → 8.0"):
        claim_folder(results, FedCLConfig(dp_epsilon=8.0), quick=False)
    claim_folder(results, FedCLConfig(seed=7, data="elsewhere", dp_epsilon=8.0), quick=False, sets=("dp_epsilon",))


@pytest.mark.parametrize("args, says", [
    (["--kinds", "cosmic-rays"], "unknown corruption"),
    (["--kinds", "contamination", "--levels", "0,1"], "[0, 1)"),
    (["--kinds", "mcar", "--levels", "0,-0.1"], "[0, 1)"),
    (["--kinds", "mcar", "--levels", "0,lots"], "--levels"),
])
def test_bad_corruption_options_exit_2_before_any_work(fedmse_slice, tmp_path, args, says):
    result = runner.invoke(app, ["experiment", "corruption", "--data", str(fedmse_slice), "--out",
                                 str(tmp_path / "out"), "--quick", *args])

    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


# --- attacks ----------------------------------------------------------------------------------------


def test_old_display_names_resolve_to_the_space_free_ones():
    names = ["scaled x10", "noisy node", "lying d=0 + flip x10", "alie"]

    grid = check_attack_grid(["fedavg"], names, None, [0], quick=True)

    assert grid.behaviours == ("scaled", "noisy", "lying", "alie") and grid.bad_nodes == (0, 1)


def test_default_target_family_is_on_the_most_nodes_then_the_most_rows():
    def node(name, families):
        rows = np.zeros((len(families), 2))
        return NodeSplit(name, rows, rows, rows, rows, np.array(families))

    splits = [node("a", ["x"] * 5 + ["y"] * 2), node("b", ["y", "z", "z", "z"]), node("c", ["y", "z"])]

    assert default_target_family(splits) == "y"  # on all three nodes, though z has more rows


def test_targeted_attackers_add_rows_of_the_family_to_their_benign_training_rows(family_network):
    (split, *_) = load_splits(FedCLConfig(data=str(family_network)))
    scan = split.attack[split.attack_family == "gafgyt.scan"]

    poisoned = _poisoned(split, "gafgyt.scan", seed=0)

    added = poisoned.train[len(split.train):]
    np.testing.assert_array_equal(poisoned.train[: len(split.train)], split.train)
    assert len(added) == min(len(scan), round(0.5 * len(split.train)))
    # every added row is one of its scan rows (NaN: cells the leakage guard masks)
    assert all(any(np.array_equal(row, r, equal_nan=True) for r in scan) for row in added)


ATTACK_ARGS = ["--behaviours", "alie,mimic,targeted,dropout", "--rules", "dynamic-guarded,krum",
               "--bad-nodes", "0,1", "--seeds", "1", "--quick"]


@pytest.fixture(scope="module")
def attacks_run(family_network, tmp_path_factory):
    out = tmp_path_factory.mktemp("attacks")
    result = runner.invoke(app, ["experiment", "attacks", "--data", str(family_network), "--out", str(out),
                                 *ATTACK_ARGS])
    assert result.exit_code == 0, result.output
    return out


def test_attacks_quick_writes_one_row_per_rule_behaviour_count_and_seed(attacks_run):
    rows = pd.read_csv(attacks_run / "results.csv")

    assert {"rule", "behaviour", "bad_nodes", "seed", "auroc", "fpr_at_tpr99", "target_recall"} <= set(rows.columns)
    assert len(rows) == 2 * (3 * 2 + 1)  # per rule: 3 behaviours at 0 and 1 bad node, and the dropout run
    assert set(rows["behaviour"]) == {"alie", "mimic", "targeted", "dropout"}
    assert set(rows["target_family"]) == {"gafgyt.scan"}
    assert rows["auroc"].between(0, 1).all() and rows["target_recall"].between(0, 1).all()
    # The 0-bad-node point of every behaviour is the same clean run.
    clean = rows[(rows["bad_nodes"] == 0) & (rows["behaviour"] != "dropout")]
    assert (clean.groupby("rule")[["auroc", "seconds"]].nunique() == 1).all().all()
    report = (attacks_run / "attacks.md").read_text()
    assert "worst loss" in report and "Targeted attack on `gafgyt.scan`" in report and "dropout" in report
    assert (attacks_run / "attacks.png").stat().st_size > 10_000


def test_attacks_resume_running_only_what_is_missing(attacks_run, family_network, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(attacks_run, out)
    rows = pd.read_csv(out / "results.csv")
    rows.loc[rows["behaviour"] == "alie", "auroc"] = 0.123  # runs that must not be redone
    rows = rows[~((rows["rule"] == "krum") & (rows["behaviour"] == "mimic") & (rows["bad_nodes"] == 1))]
    rows.to_csv(out / "results.csv", index=False)  # as if interrupted before Krum's mimic run

    result = runner.invoke(app, ["experiment", "attacks", "--data", str(family_network), "--out", str(out),
                                 *ATTACK_ARGS])

    assert result.exit_code == 0, result.output
    again = pd.read_csv(out / "results.csv")
    assert len(again) == len(rows) + 1 and (again.loc[again["behaviour"] == "alie", "auroc"] == 0.123).all()
    redone = again[(again["rule"] == "krum") & (again["behaviour"] == "mimic") & (again["bad_nodes"] == 1)]
    assert len(redone) == 1 and redone["auroc"].between(0, 1).all()


@pytest.mark.parametrize("args, says", [
    (["--behaviours", "alie,gremlin"], "gremlin"),
    (["--rules", "dynamic,mean"], "mean"),
    (["--bad-nodes", "0,-1"], "non-negative"),
    (["--bad-nodes", "0,two"], "--bad-nodes"),
    (["--bad-nodes", "0,3"], "no honest node"),  # --quick keeps 3 nodes
    (["--target-family", "mirai.xmas"], "mirai.xmas"),
])
def test_bad_attack_options_exit_2_before_any_work(family_network, tmp_path, args, says):
    result = runner.invoke(app, ["experiment", "attacks", "--data", str(family_network), "--out",
                                 str(tmp_path / "out"), "--quick", *args])

    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
