"""The `fedcl` command: options, artefacts and one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedcl.cli import app

runner = CliRunner()


def test_run_writes_every_artefact(fedmse_slice, tmp_path):
    # Execute
    result = runner.invoke(app, ["run", "--data", str(fedmse_slice), "--out", str(tmp_path / "r"),
                                 "--rounds", "2", "--tau", "0.2", "--lambda", "0.05", "--aggregation", "fedavg"])

    # Assert
    assert result.exit_code == 0, result.output
    assert "pooled: auroc" in result.output
    assert "note: 3 node(s) with few benign rows" in result.stderr  # 80 validation rows each
    for name in ("config.toml", "model.pt", "history.jsonl", "metrics.json", "scores.csv", "report.md", "roc.png"):
        assert (tmp_path / "r" / name).is_file(), name
    config = (tmp_path / "r" / "config.toml").read_text()
    assert 'aggregation = "fedavg"' in config and "temperature = 0.2" in config and "rounds = 2" in config


def test_train_then_evaluate_as_separate_steps(fedmse_slice, tmp_path):
    # Prepare
    toml = tmp_path / "c.toml"
    toml.write_text(f'data = "{fedmse_slice}"\nrounds = 1\nembedding_dim = 8\n')

    # Execute
    trained = runner.invoke(app, ["train", "--config", str(toml), "--out", str(tmp_path / "r")])
    metrics_after_train = (tmp_path / "r" / "metrics.json").exists()
    evaluated = runner.invoke(app, ["evaluate", "--out", str(tmp_path / "r")])

    # Assert
    assert trained.exit_code == 0, trained.output
    assert not metrics_after_train  # train alone trains; evaluation is its own step
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["pooled"]["auroc"] > 0.5


def test_a_run_interrupted_in_a_folder_of_an_earlier_run_leaves_none_of_its_files(fedmse_slice, tmp_path):
    import pytest

    from fedcl.config import FedCLConfig
    from fedcl.pipeline import train

    # Prepare: a trained and evaluated run
    run = tmp_path / "r"
    assert runner.invoke(app, ["run", "--data", str(fedmse_slice), "--out", str(run), "--rounds", "1"]).exit_code == 0

    def interrupt(entry):
        raise KeyboardInterrupt  # Ctrl-C after the first round

    # Execute: a second run into the same folder, stopped in its first round
    with pytest.raises(KeyboardInterrupt):
        train(FedCLConfig(data=str(fedmse_slice), rounds=3), run, on_round=interrupt)
    evaluated = runner.invoke(app, ["evaluate", "--out", str(run)])

    # Assert: the new config and history alone (Ctrl-C came before round 1's checkpoint), so nothing reports
    # the old model as the new run
    assert sorted(p.name for p in run.iterdir()) == ["config.toml", "history.jsonl"]
    assert "rounds = 3" in (run / "config.toml").read_text()
    assert evaluated.exit_code == 2 and "not a trained run directory" in evaluated.output


def test_bad_csv_is_one_line_error_with_exit_2(tmp_path):
    # Prepare: a client folder whose training file has text in column 3 of line 2
    bad = tmp_path / "Client-1" / "normal" / "data.csv"
    bad.parent.mkdir(parents=True)
    row = ",".join(["1.0"] * 115)
    bad.write_text(row + "\n" + row.replace("1.0", "abc", 3).replace("abc", "1.0", 2) + "\n")

    # Execute
    result = runner.invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")])

    # Assert
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()
    assert len(message) == 1 and "data.csv" in message[0] and "line 2" in message[0]


def test_unknown_option_and_bad_values_exit_2(tmp_path):
    assert runner.invoke(app, ["run", "--no-such-option"]).exit_code == 2
    bad_agg = runner.invoke(app, ["train", "--data", str(tmp_path), "--aggregation", "mean"])
    assert bad_agg.exit_code == 2 and "aggregation must be one of" in bad_agg.output
    missing = runner.invoke(app, ["train", "--data", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "nope" in missing.output
    unknown_key = tmp_path / "c.toml"
    unknown_key.write_text("roundz = 3\n")
    result = runner.invoke(app, ["train", "--config", str(unknown_key)])
    assert result.exit_code == 2 and "roundz" in result.output
    for margin in (["--acceptance-margin", "2"], ["--acceptance-margin", "0.7", "--dp-epsilon", "8"]):
        refused = runner.invoke(app, ["train", "--data", str(tmp_path), *margin])
        assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1, refused.output
        assert "acceptance_margin" in refused.output


@pytest.mark.parametrize("argv, message", [
    (["run", "--no-such-option"], "No such option '--no-such-option'"),
    (["experiment", "compare"], "Missing option '--data'"),
    (["train", "--rounds", "[/x]"], "Invalid value for '--rounds': '[/x]' is not a valid integer"),  # not markup
])
def test_a_mistyped_command_line_is_one_line_and_exit_2(argv, message):
    result = subprocess.run([str(Path(sys.executable).with_name("fedcl")), *argv], capture_output=True, text=True,
                            timeout=120)

    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    command = " ".join(["fedcl", *argv[:2 if argv[0] == "experiment" else 1]])
    assert line.startswith(f"error: {message}") and line.endswith(f"Try '{command} --help' for help.")


def test_a_node_with_no_other_to_accept_from_exits_2(fedmse_slice, tmp_path):
    one = tmp_path / "one"
    shutil.copytree(fedmse_slice / "Client-1", one / "Client-1")

    result = runner.invoke(app, ["train", "--data", str(one), "--rounds", "1", "--acceptance-margin", "0.7",
                                 "--out", str(tmp_path / "run")])

    assert result.exit_code == 2 and "acceptance_margin needs at least 2 nodes" in result.output, result.output
    assert not (tmp_path / "run" / "model.pt").exists()  # refused before training


def test_evaluate_without_a_trained_run_exits_2(tmp_path):
    result = runner.invoke(app, ["evaluate", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "fedcl train" in result.output


def test_flower_simulate_trains_with_the_flower_apps_and_reports(fedmse_slice, tmp_path):
    result = runner.invoke(app, ["flower", "simulate", "--data", str(fedmse_slice), "--out", str(tmp_path / "f"),
                                 "--rounds", "2"])

    assert result.exit_code == 0, result.output
    auroc = float(result.output.split("pooled AUROC ")[1].split(";")[0])
    assert auroc > 0.9
    assert len((tmp_path / "f" / "history.jsonl").read_text().splitlines()) == 2
    assert "federated rounds" in result.stderr and "2/2 loss" in result.stderr  # progress, round by round


def test_features_command_writes_csv_and_rejects_a_non_capture(tmp_path):
    from fedcl.data import COLUMNS
    from fedcl.traffic import write_synthetic_capture

    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 300, seed=1)
    ok = runner.invoke(app, ["features", str(capture), str(tmp_path / "f.csv")])
    assert ok.exit_code == 0, ok.output
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS) and len(lines) == 301

    (tmp_path / "not.pcap").write_text("hello, not a capture\n")
    bad = runner.invoke(app, ["features", str(tmp_path / "not.pcap"), str(tmp_path / "g.csv")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "not.pcap" in bad.output


def test_without_data_the_simulated_network_is_made_once_and_used(tmp_path, monkeypatch):
    # Prepare: an empty data home, as on a fresh machine
    monkeypatch.setenv("FEDCL_DATA_HOME", str(tmp_path / "home"))

    # Execute
    first = runner.invoke(app, ["train", "--out", str(tmp_path / "r"), "--rounds", "1"])
    made = (tmp_path / "home" / "simulated-seed0" / "SIMULATION.json").stat().st_mtime_ns
    second = runner.invoke(app, ["train", "--out", str(tmp_path / "r2"), "--rounds", "1"])

    # Assert
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert (tmp_path / "home" / "simulated-seed0" / "SIMULATION.json").stat().st_mtime_ns == made  # not redone
    assert "simulated-seed0" in (tmp_path / "r" / "config.toml").read_text()
    from fedcl.pipeline import load_detectors
    assert len(load_detectors(tmp_path / "r")) == 9  # the nine simulated devices


def test_out_that_is_a_file_or_below_one_exits_2_before_any_work(fedmse_slice, tmp_path):
    # Prepare
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder\n")

    # Execute
    on_file = runner.invoke(app, ["run", "--data", str(fedmse_slice), "--out", str(a_file)])
    below_file = runner.invoke(app, ["train", "--data", str(fedmse_slice), "--out", str(a_file / "run")])

    # Assert
    for result in (on_file, below_file):
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "taken" in lines[0] and "--out" in lines[0]
        assert "federated rounds" not in result.output
    assert a_file.read_text() == "not a folder\n"


def test_config_that_cannot_work_fails_before_training(fedmse_slice, tmp_path):
    # Prepare: more neighbours than the detector keeps references
    toml = tmp_path / "c.toml"
    toml.write_text(f'data = "{fedmse_slice}"\nn_neighbors = 300\n')

    # Execute
    result = runner.invoke(app, ["run", "--config", str(toml), "--out", str(tmp_path / "r")])

    # Assert
    assert result.exit_code == 2 and "n_neighbors" in result.output and "256" in result.output
    assert not (tmp_path / "r").exists()  # nothing was trained or written


def test_data_without_attack_rows_says_what_was_computed(fedmse_slice, tmp_path, recwarn):
    # Prepare: the same clients without their attack folders
    import shutil

    data = tmp_path / "data"
    shutil.copytree(fedmse_slice, data)
    for client in data.iterdir():
        shutil.rmtree(client / "abnormal")

    # Execute
    result = runner.invoke(app, ["run", "--data", str(data), "--out", str(tmp_path / "r"), "--rounds", "1"])

    # Assert
    assert result.exit_code == 0, result.output
    assert "no attack rows in the test data" in result.output and "FPR" in result.output
    assert "pooled:" not in result.output
    assert not [w for w in recwarn.list if "matplotlib" in w.filename or "legend" in str(w.message)]
    assert "No attack rows" in (tmp_path / "r" / "report.md").read_text()


def test_a_bug_shows_its_traceback_without_local_variables(tmp_path):
    # Prepare: a library error that is not the user's fault, with a secret in a local variable
    import subprocess
    import sys

    script = (
        "import fedcl.pipeline as p\n"
        "def broken(config):\n"
        "    secret = 'hunter2-do-not-print'\n"
        "    raise ValueError('internal shape mismatch')\n"
        "p.load_splits = broken\n"
        "import sys\n"
        f"sys.argv = ['fedcl', 'train', '--data', 'whatever', '--out', {str(tmp_path / 'r')!r}]\n"
        "from fedcl.cli.main import main\n"
        "main()\n"  # the installed `fedcl`
    )

    # Execute
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)})

    # Assert: not "bad input" (exit 2) but a bug with its traceback, and no local variable printed
    assert result.returncode == 1, result.stderr
    assert "ValueError" in result.stderr and "internal shape mismatch" in result.stderr
    assert "Traceback" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_more_configuration_mistakes_exit_2_in_one_line(fedmse_slice, tmp_path):
    # Prepare
    bad_encoder = tmp_path / "e.toml"
    bad_encoder.write_text(f'data = "{fedmse_slice}"\nencoder = "cnn"\n')

    # Execute
    results = {
        "encoder": runner.invoke(app, ["train", "--config", str(bad_encoder), "--out", str(tmp_path / "r")]),
        "seed": runner.invoke(app, ["train", "--data", str(fedmse_slice), "--seed", "-1"]),
        "cells": runner.invoke(app, ["experiment", "benchmark", "--data", str(fedmse_slice), "--cell", "natral",
                                     "--out", str(tmp_path / "b")]),
        "flower run without TLS choice": runner.invoke(app, ["flower", "run", "--superlink", "127.0.0.1:1",
                                                             "--out", str(tmp_path / "f")]),
    }

    # Assert
    for what, result in results.items():
        assert result.exit_code == 2, (what, result.output)
        assert len(result.output.strip().splitlines()) == 1, (what, result.output)
    assert "cnn" in results["encoder"].output and "natral" in results["cells"].output
    assert not (tmp_path / "r" / "model.pt").exists()
