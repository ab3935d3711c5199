"""The server's run directory: a run never overwrites an earlier one, and --resume continues only the same run."""

from __future__ import annotations

import pytest

from fedcl.config import FedCLConfig, save_config
from fedcl.errors import ConfigError
from fedcl.federated.flower import run_inprocess
from fedcl.federated.flower.run_dir import CHECKPOINT_FILE, check_run_dir
from fedcl.rundir import CONFIG_FILE


def _earlier_run(path, config: FedCLConfig):
    # What a run leaves behind after a round: its settings and a checkpoint (content not read here).
    path.mkdir(parents=True)
    save_config(config, path / CONFIG_FILE)
    (path / CHECKPOINT_FILE).write_bytes(b"")
    return path


def test_a_new_run_refuses_a_folder_holding_a_checkpoint(tmp_path):
    out = _earlier_run(tmp_path / "run", FedCLConfig())
    with pytest.raises(ConfigError, match="add --resume"):
        check_run_dir(out, FedCLConfig(), resume=False)
    check_run_dir(tmp_path / "fresh", FedCLConfig(), resume=False)  # absent or empty folders are fine


def test_resume_refuses_a_folder_without_a_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "absent"):
        with pytest.raises(ConfigError, match="no checkpoint.pt to resume from"):
            check_run_dir(out, FedCLConfig(), resume=True)


def test_resume_refuses_other_settings_and_names_them(tmp_path):
    # Prepare
    out = _earlier_run(tmp_path / "run", FedCLConfig(rounds=2, lr=1e-3, seed=1))

    # Execute
    with pytest.raises(ConfigError) as refused:
        check_run_dir(out, FedCLConfig(rounds=2, lr=1e-2, seed=1), resume=True)

    # Assert: one line naming the changed setting with both values
    assert "lr 0.001 -> 0.01" in str(refused.value) and "\n" not in str(refused.value)


def test_resume_accepts_the_same_settings_with_more_rounds_or_other_node_paths(tmp_path):
    out = _earlier_run(tmp_path / "run", FedCLConfig(rounds=2, data="/node/a"))
    check_run_dir(out, FedCLConfig(rounds=5, data=""), resume=True)


def test_a_checkpoint_from_before_min_rows_per_round_resumes_only_with_it_off(tmp_path):
    # Prepare: a config.toml written before the key existed
    out = _earlier_run(tmp_path / "run", FedCLConfig(rounds=2))
    saved = (out / CONFIG_FILE).read_text()
    (out / CONFIG_FILE).write_text("\n".join(line for line in saved.splitlines() if "min_rows_per_round" not in line))

    # Execute / Assert: its small nodes trained one epoch a round, so the new default would change the run
    with pytest.raises(ConfigError, match="min_rows_per_round 0 -> 1000"):
        check_run_dir(out, FedCLConfig(rounds=2), resume=True)
    check_run_dir(out, FedCLConfig(rounds=2, min_rows_per_round=0), resume=True)


def test_resume_under_differential_privacy_keeps_the_rounds_the_noise_was_calibrated_for(tmp_path):
    out = _earlier_run(tmp_path / "run", FedCLConfig(rounds=2, dp_epsilon=3.0))
    with pytest.raises(ConfigError, match="rounds 2 -> 5"):
        check_run_dir(out, FedCLConfig(rounds=5, dp_epsilon=3.0), resume=True)
    check_run_dir(out, FedCLConfig(rounds=2, dp_epsilon=3.0), resume=True)


def test_the_server_refuses_before_touching_the_earlier_run(fedmse_slice, tmp_path):
    # Prepare: a finished 1-round run
    nodes = [{"data-path": str(fedmse_slice / f"Client-{i}"), "partition-id": i} for i in (1, 2, 3)]
    run_inprocess(FedCLConfig(rounds=1), nodes, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}

    # Execute: a new run (no resume) into the same folder
    with pytest.raises(ConfigError, match="add --resume"):
        run_inprocess(FedCLConfig(rounds=1, seed=9), nodes, tmp_path / "run")

    # Assert: nothing of the earlier run was rewritten
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
