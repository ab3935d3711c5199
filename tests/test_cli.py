"""The `fedcl` command: options, artefacts and one-line errors with exit code 2."""

from __future__ import annotations

import json

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
