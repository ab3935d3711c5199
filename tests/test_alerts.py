"""Alarm episodes (`fedcl detect --alerts`): runs of windowed alarms on one channel, as JSON lines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import NBAIOT
from fedcl.cli import app
from fedcl.edge import EpisodeBuilder, alert_episodes

runner = CliRunner()
KEYS = ["time", "end", "node", "src", "dst", "score", "threshold", "window", "packets", "flagged",
        "first_packet", "last_packet", "model"]


def test_episodes_by_hand():
    # Prepare: two channels, interleaved; A's alarm is broken by a quiet packet of A (packet 5)
    frame = pd.DataFrame({
        "timestamp": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5],
        "src": list("ABAABAAB"),
        "dst": ["x"] * 8,
        "score": [1.0, 9.0, 3.0, 4.0, 8.0, 1.0, 5.0, 7.0],
        "alert": [0, 1, 0, 1, 1, 0, 1, 1],
        "alert_w3": [0, 1, 1, 1, 1, 0, 1, 1],
    })

    # Execute
    episodes = alert_episodes(frame, 3, node="n", threshold=2.5, model="h")

    # Assert: B 1,4,7; A 2-3; A 6 -- in order of their first packet
    assert [(e["src"], e["first_packet"], e["last_packet"], e["packets"]) for e in episodes] == [
        ("B", 1, 7, 3), ("A", 2, 3, 2), ("A", 6, 6, 1)]
    assert [e["score"] for e in episodes] == [9.0, 4.0, 5.0]
    assert [e["flagged"] for e in episodes] == [3, 1, 1]  # packet 2 alarms only through the vote
    assert episodes[0]["time"] == "1970-01-01T00:00:01.000000Z" and episodes[0]["end"] == "1970-01-01T00:00:07.500000Z"
    assert list(episodes[0]) == KEYS and episodes[0]["threshold"] == 2.5 and episodes[0]["window"] == 3


def test_episodes_built_frame_by_frame_equal_the_whole_stream():
    # Prepare: three interleaved channels with alarms that cross the frame boundaries, cut in every way
    rng = np.random.default_rng(1)
    n = 120
    frame = pd.DataFrame({"timestamp": np.arange(n) / 4, "src": rng.choice(list("ABC"), n), "dst": "x",
                          "score": rng.random(n), "alert": (rng.random(n) < 0.5).astype(int)})
    frame["alert_w3"] = (rng.random(n) < 0.7).astype(int)
    whole = alert_episodes(frame, 3, node="n", threshold=0.5, model="h")
    cuttings = [[k] for k in range(1, n, 3)] + [list(range(1, n)), sorted(rng.choice(range(1, n), 9, replace=False))]

    for cuts in cuttings:
        # Execute
        builder = EpisodeBuilder(3, node="n", threshold=0.5, model="h")
        bounds = [0, *cuts, n]
        streamed = [e for a, b in zip(bounds[:-1], bounds[1:]) for e in builder.update(frame.iloc[a:b])]
        streamed += builder.close()

        # Assert
        assert streamed == whole


def test_a_feature_file_is_one_channel_without_times():
    # Prepare: no timestamp, src or dst columns
    frame = pd.DataFrame({"score": [5.0, 6.0, 1.0, 7.0], "alert": [1, 1, 0, 1], "alert_w1": [1, 1, 0, 1]})

    # Execute
    episodes = alert_episodes(frame, 1, node="n", threshold=2.0, model="h")

    # Assert
    assert [(e["first_packet"], e["last_packet"], e["score"]) for e in episodes] == [(0, 1, 6.0), (3, 3, 7.0)]
    assert all(e["src"] is None and e["dst"] is None and e["time"] is None and e["end"] is None for e in episodes)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, one_torch_thread):
    """A tiny run of the federation's detector alone, on the real fedmse-iid rows."""
    from fedcl.config import FedCLConfig
    from fedcl.pipeline import train

    config = FedCLConfig(data=str(NBAIOT / "fedmse-iid"), rounds=1, local_steps=3, personalisation="off")
    return train(config, tmp_path_factory.mktemp("alerts") / "run")


def test_alerts_on_a_capture_agree_with_the_per_packet_csv(plain_run, tmp_path, monkeypatch):
    # Prepare: traffic of another network than the node's, so it alarms on many channels
    from fedcl.traffic import write_synthetic_capture

    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 600, seed=3)
    monkeypatch.chdir(tmp_path)  # the per-packet CSV's default folder

    # Execute
    to_file = runner.invoke(app, ["detect", str(capture), "--model", str(plain_run), "--node", "Client-2",
                                  "--window", "3", "--alerts", str(tmp_path / "a.jsonl")])
    to_stdout = runner.invoke(app, ["detect", str(capture), "--model", str(plain_run), "--node", "Client-2",
                                    "--window", "3", "--alerts", "-", "--out", str(tmp_path / "b.csv")])

    # Assert: every windowed alarm is in exactly one episode of its channel, with the CSV's figures
    assert to_file.exit_code == 0, to_file.output
    packets = pd.read_csv(tmp_path / "c.alerts.csv", index_col="packet")
    episodes = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    alarmed = packets[packets["alert_w3"] == 1]
    assert len(episodes) > 1 and sum(e["packets"] for e in episodes) == len(alarmed)
    for e in episodes:
        assert list(e) == KEYS and e["node"] == "Client-2" and e["window"] == 3 and len(e["model"]) == 64
        whole = packets[(packets["src"] == e["src"]) & (packets["dst"] == e["dst"])]
        channel = whole.loc[e["first_packet"] : e["last_packet"]]
        assert channel["alert_w3"].all() and len(channel) == e["packets"]  # a run of the channel's alarms
        before, after = whole.loc[: e["first_packet"] - 1], whole.loc[e["last_packet"] + 1 :]
        assert (before.empty or before["alert_w3"].iloc[-1] == 0) and (after.empty or after["alert_w3"].iloc[0] == 0)
        assert e["score"] == pytest.approx(channel["score"].max())
        assert e["flagged"] == channel["alert"].sum()
        assert pd.Timestamp(e["time"]).timestamp() == pytest.approx(channel["timestamp"].iloc[0], abs=1e-6)
    assert to_stdout.exit_code == 0, to_stdout.output
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()] == episodes  # stdout: JSON lines only
    assert "alarm episodes" in to_stdout.stderr


def test_alerts_into_a_missing_directory_exit_2_before_scoring(plain_run, tmp_path):
    # Prepare
    csv = NBAIOT / "uci-sample" / "Danmini_Doorbell" / "gafgyt_attacks" / "udp.csv"

    # Execute
    result = runner.invoke(app, ["detect", str(csv), "--model", str(plain_run), "--node", "Client-1", "--out",
                                 str(tmp_path / "o.csv"), "--alerts", str(tmp_path / "no" / "a.jsonl")])

    # Assert
    assert result.exit_code == 2 and result.output.startswith("error:") and len(result.output.splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()
