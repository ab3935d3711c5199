"""Majority vote, window choice, and `fedcl detect` on captures and feature files."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from conftest import NBAIOT
from fedcl.cli import app
from fedcl.model import choose_window, majority_vote

runner = CliRunner()


def test_majority_vote_by_hand():
    flags = np.array([1, 0, 1, 1, 0, 0, 0, 1])
    # w=3: counts over the last 3 = 1,1,2,2,2,1,0,1 -> alarm when > 1
    np.testing.assert_array_equal(majority_vote(flags, 3), [0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(majority_vote(flags, 1), flags)


def test_choose_window_is_the_smallest_without_false_alarms():
    benign = np.zeros(100, dtype=int)
    benign[[10, 11, 40, 41, 42]] = 1  # a run of 3 false alarms needs w >= 7 to stay quiet
    assert choose_window(benign) == 7
    assert choose_window(np.zeros(50, dtype=int)) == 1
    assert choose_window(np.ones(50, dtype=int)) == 51


def test_detect_command_on_a_feature_file_and_a_capture(tmp_path):
    # Prepare: a model of one real device, and a capture of synthetic traffic
    from fedcl.traffic import write_synthetic_capture

    device = NBAIOT / "uci-sample" / "Danmini_Doorbell"
    trained = runner.invoke(app, ["train", "--data", str(device), "--out", str(tmp_path / "m"), "--rounds", "3"])
    assert trained.exit_code == 0, trained.output
    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 500, seed=2)

    # Execute
    attacks = runner.invoke(app, ["detect", str(device / "gafgyt_attacks" / "scan.csv"), "--model", str(tmp_path / "m"),
                                  "--out", str(tmp_path / "a.csv")])
    packets = runner.invoke(app, ["detect", str(capture), "--model", str(tmp_path / "m"), "--window", "3"])
    wrong_node = runner.invoke(app, ["detect", str(capture), "--model", str(tmp_path / "m"), "--node", "Nope"])

    # Assert
    assert attacks.exit_code == 0, attacks.output
    alerts = pd.read_csv(tmp_path / "a.csv")
    assert len(alerts) == 200 and alerts["alert"].mean() > 0.9  # a scan is caught packet by packet
    assert packets.exit_code == 0, packets.output
    assert "windowed alerts per minute" in packets.output
    result = pd.read_csv(tmp_path / "c.alerts.csv")
    assert {"timestamp", "channel", "score", "alert", "alert_w3"} <= set(result.columns) and len(result) == 500
    assert wrong_node.exit_code == 2 and "Nope" in wrong_node.output
