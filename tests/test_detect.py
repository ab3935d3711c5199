"""Majority vote, window choice, and `fedcl detect` on captures and feature files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import NBAIOT
from fedcl import detect
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


def test_detect_command_on_a_feature_file_and_a_capture(tmp_path, monkeypatch):
    # Prepare: a model of one real device, and a capture of synthetic traffic
    from fedcl.traffic import write_synthetic_capture

    device = NBAIOT / "uci-sample" / "Danmini_Doorbell"
    trained = runner.invoke(app, ["train", "--data", str(device), "--out", str(tmp_path / "m"), "--rounds", "3"])
    assert trained.exit_code == 0, trained.output
    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 500, seed=2)
    monkeypatch.chdir(tmp_path / "m")  # where the default output goes, not beside the traffic

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
    result = pd.read_csv(tmp_path / "m" / "c.alerts.csv")
    assert not (tmp_path / "c.alerts.csv").exists()
    assert {"timestamp", "channel", "score", "alert", "alert_w3"} <= set(result.columns) and len(result) == 500
    assert wrong_node.exit_code == 2 and "Nope" in wrong_node.output


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, one_torch_thread):
    """A tiny run of the federation's detector alone, on the real fedmse-iid rows."""
    from fedcl.config import FedCLConfig
    from fedcl.pipeline import train

    config = FedCLConfig(data=str(NBAIOT / "fedmse-iid"), rounds=1, local_steps=3, personalisation="off")
    return train(config, tmp_path_factory.mktemp("detect") / "run")


@pytest.fixture(scope="module")
def capture_20k(tmp_path_factory) -> Path:
    """20,000 synthetic packets over 100 s: a pruning pass near packet 12,000 also ends a chunk."""
    from fedcl.traffic import write_synthetic_capture

    capture = tmp_path_factory.mktemp("capture") / "c.pcap"
    write_synthetic_capture(capture, 20_000, seed=3)
    return capture


def assert_streamed_equals_whole(capture: Path, option: list[str], scorer, window: int, tmp_path: Path,
                                 monkeypatch) -> None:
    """`fedcl detect` in chunks of 8,192 packets writes what scoring the whole capture at once gives:
    the same CSV text, summary and alert lines (bit for bit), with an episode across a chunk boundary."""
    # Prepare: the whole capture scored in one call, as `fedcl detect` did before it streamed
    from fedcl.edge import alert_episodes

    whole = detect.detect(scorer.detector, *detect.read_traffic(capture), window, guard=scorer.leakage_guard)
    episodes = alert_episodes(whole, window, node=scorer.node, threshold=scorer.detector.threshold_,
                              model=scorer.model)
    out, alerts = tmp_path / "a.csv", tmp_path / "a.jsonl"
    monkeypatch.setattr(detect, "CHUNK_PACKETS", 8192)

    # Execute
    result = runner.invoke(app, ["detect", str(capture), *option, "--window", str(window), "--out", str(out),
                                 "--alerts", str(alerts)])

    # Assert
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == whole.to_csv(index_label="packet")
    assert alerts.read_text(encoding="utf-8").splitlines() == detect.alert_lines(episodes)
    assert result.stdout.splitlines() == [*detect.summarise_alerts(whole, window), f"alerts: {out}",
                                          f"alarm episodes: {len(episodes):,} ({alerts})"]
    assert any(e["first_packet"] < 8192 <= e["last_packet"] for e in episodes)  # one spans a chunk boundary


def test_streamed_detect_equals_the_whole_capture(plain_run, capture_20k, tmp_path, monkeypatch):
    assert_streamed_equals_whole(capture_20k, ["--model", str(plain_run), "--node", "Client-2"],
                                 detect.from_run(plain_run, "Client-2"), 3, tmp_path, monkeypatch)


class _FirstColumn:
    """A detector whose score is the row's first value."""

    threshold_ = 0.5

    def decision_function(self, X):
        return X[:, 0].astype(np.float64)


def test_the_vote_and_summary_carry_across_chunks():
    # Prepare: random flags in chunks of random sizes, on two channels
    rng = np.random.default_rng(0)
    flags = (rng.random(5000) < 0.6).astype(np.float64)
    info = pd.DataFrame({"timestamp": np.arange(5000) / 10, "src": rng.choice(["a", "b", "c"], 5000), "dst": "x"})
    info["channel"] = info["src"] + " -> x"
    bounds = [0, *np.sort(rng.choice(np.arange(1, 5000), 12, replace=False)), 5000]
    chunks = [(flags[a:b, None], info.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    # Execute
    frames = list(detect.detect_chunks(_FirstColumn(), chunks, 7, guard="off"))
    summary = detect.AlertSummary(7)
    for frame in frames:
        summary.update(frame)

    # Assert
    streamed = pd.concat(frames)
    np.testing.assert_array_equal(streamed["alert_w7"], majority_vote(flags.astype(int), 7))
    assert all(len(f) % 2048 == 0 for f in frames[:-1])  # the detector's passes start where one call's do
    whole = detect.detect(_FirstColumn(), flags[:, None], info, 7, guard="off")
    assert summary.lines() == detect.summarise_alerts(whole, 7)
    top = whole.loc[whole["alert_w7"] == 1, "channel"].value_counts().head(5)  # as the summary was made
    assert summary.lines()[2:] == [f"  {count:6,d}  {channel}" for channel, count in top.items()]


def test_a_window_longer_than_the_traffic_says_it_cannot_alarm():
    flags = np.ones(50, dtype=np.int64)  # every packet flagged

    long = detect.summarise_alerts(pd.DataFrame({"alert": flags, "alert_w101": majority_vote(flags, 101)}), 101)
    fitting = detect.summarise_alerts(pd.DataFrame({"alert": flags, "alert_w99": majority_vote(flags, 99)}), 99)

    assert long[-1] == ("window 101 needs more than 50 flagged packets to alarm, and 50 were scored: a shorter "
                        "--window, or a longer capture")
    assert len(fitting) == 1 and fitting[0].endswith("window 99: 1 (2.00%)")  # the 50th of 99 is a majority


def test_an_interrupt_keeps_the_rows_written(plain_run, capture_20k, tmp_path, monkeypatch):
    # Prepare: Ctrl-C while the second frame is scored
    scored = detect.detect_chunks

    def interrupted(*args, **kwargs):
        frames = scored(*args, **kwargs)
        yield next(frames)
        raise KeyboardInterrupt

    monkeypatch.setattr(detect, "detect_chunks", interrupted)
    out, alerts = tmp_path / "a.csv", tmp_path / "a.jsonl"

    # Execute
    result = runner.invoke(app, ["detect", str(capture_20k), "--model", str(plain_run), "--node", "Client-2",
                                 "--window", "3", "--out", str(out), "--alerts", str(alerts)])

    # Assert: one line; the CSV holds the rows of the first frame, the alerts every episode in them
    assert result.exit_code == 130 and result.stderr.startswith("interrupted:")
    assert len(result.stderr.splitlines()) == 1
    rows = pd.read_csv(out)
    assert len(rows) > 0 and f"first {len(rows):,} packets" in result.stderr
    episodes = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert sum(e["packets"] for e in episodes) == rows["alert_w3"].sum() > 0


def test_a_damaged_capture_keeps_the_rows_of_its_intact_packets(plain_run, capture_20k, tmp_path):
    # Prepare: the capture cut short in a record
    damaged = tmp_path / "d.pcap"
    damaged.write_bytes(capture_20k.read_bytes()[:3_000_000])
    out = tmp_path / "d.csv"

    # Execute
    result = runner.invoke(app, ["detect", str(damaged), "--model", str(plain_run), "--node", "Client-2",
                                 "--out", str(out)])

    # Assert
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    rows = pd.read_csv(out)
    assert f"wrote the rows of those {len(rows)} packets" in result.output and len(rows) > 2048


def test_output_that_would_overwrite_the_traffic_exits_2_before_reading(tmp_path):
    traffic = tmp_path / "traffic.csv"
    traffic.write_text("not read\n")

    for args in (["--out", str(traffic)], ["--alerts", str(traffic)],
                 ["--out", str(tmp_path / "a.csv"), "--alerts", str(tmp_path / "a.csv")]):
        result = CliRunner().invoke(app, ["detect", str(traffic), *args])
        assert result.exit_code == 2
        assert "must be three different files" in result.output
    assert traffic.read_text() == "not read\n"
