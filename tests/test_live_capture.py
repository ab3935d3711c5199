"""`fedcl detect --interface`: live capture on a veth pair in a network namespace the tests make (root only,
as CI runs), scored as the same frames read from a pcap file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import dpkt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import NBAIOT
from fedcl.cli import app
from live_capture import in_namespace, replay, rows_written, start_detect, stop, veth_namespace, wait_until

# Namespaces, veth pairs and capture need root (CI runs as root).
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="live capture tests need root")

runner = CliRunner()
NODE = "Client-2"
FLOOD = "10.0.0.66"  # the attack-like part of the replay: a UDP flood from this address


@pytest.fixture(scope="module")
def run_and_bundle(tmp_path_factory, one_torch_thread):
    """A tiny run of the federation's detector on the real fedmse-iid rows, and NODE's bundle."""
    from fedcl.config import FedCLConfig
    from fedcl.export import export_node
    from fedcl.pipeline import train

    root = tmp_path_factory.mktemp("live")
    run = train(FedCLConfig(data=str(NBAIOT / "fedmse-iid"), rounds=1, local_steps=3, personalisation="off"),
                root / "run")
    return run, export_node(run, NODE, root / "bundle")


@pytest.fixture(scope="module")
def namespace():
    """A network namespace of its own with the veth pair va <-> vb (deleted afterwards)."""
    assert os.geteuid() == 0, "live capture tests need root (CI runs as root)"
    with veth_namespace("fedcl-test") as name:
        yield name


@pytest.fixture(scope="module")
def replay_pcap(tmp_path_factory):
    """IoT-like traffic of another network than the node's, then a UDP flood from FLOOD: 900 frames."""
    from fedcl.traffic import write_synthetic_capture

    path = tmp_path_factory.mktemp("replay") / "replay.pcap"
    write_synthetic_capture(path, 600, seed=3)
    with path.open("rb") as f:
        frames = [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]
    udp = dpkt.udp.UDP(sport=40000, dport=80, data=bytes(512))
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 66]), dst=bytes([10, 0, 0, 1]), p=17, ttl=64, data=udp)
    ip.len = len(ip)
    flood = bytes(dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x42", dst=b"\x02\x00\x00\x00\x00\x01",
                                         type=dpkt.ethernet.ETH_TYPE_IP, data=ip))
    frames += [(frames[-1][0] + 1e-4 * (i + 1), flood) for i in range(300)]
    _write_pcap(path, frames)
    return path


def _write_pcap(path, frames) -> None:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=262144)
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)


def test_live_rows_and_alerts_equal_the_same_frames_read_from_a_file(run_and_bundle, namespace, replay_pcap,
                                                                        tmp_path):
    # Prepare: the bundle path, in a fresh interpreter that reports whether it imported torch or flwr
    _, bundle = run_and_bundle
    out, alerts = tmp_path / "live.csv", tmp_path / "live.jsonl"
    detect = start_detect(namespace, bundle, out, alerts, "--window", "3", wrapper=_MODULES_AFTER)

    # Execute: replay every frame once, then SIGTERM
    sent = replay(namespace, replay_pcap)
    assert wait_until(lambda: rows_written(out) >= sent, 30)
    code, stdout, stderr = stop(detect, signal.SIGTERM)

    # Assert: a clean exit with the summary; every frame sent became one row, none dropped
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("900 packets; per-packet alerts")
    assert "interface vb: 900 packets received, 0 dropped by the kernel, 0 by the interface" in stdout
    assert json.loads(stdout.strip().splitlines()[-1]) == ["onnxruntime"]  # no torch, no flwr
    live = pd.read_csv(out, index_col="packet")
    episodes = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert len(live) == sent == 900
    flood = [e for e in episodes if e["src"] == FLOOD]
    assert flood and sum(e["packets"] for e in flood) > 250  # the flood alarms, nearly all of it
    assert all(e["node"] == NODE and e["window"] == 3 and len(e["model"]) == 64 for e in episodes)

    # Execute: the same frames, with the kernel's capture times, as a pcap file through `fedcl detect FILE`
    with replay_pcap.open("rb") as f:
        frames = [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]
    saved = tmp_path / "saved.pcap"
    _write_pcap(saved, zip(live["timestamp"], frames, strict=True))
    from_file = runner.invoke(app, ["detect", str(saved), "--bundle", str(bundle), "--window", "3",
                                    "--out", str(tmp_path / "file.csv"), "--alerts", str(tmp_path / "file.jsonl")])

    # Assert: the same rows; scores equal to rounding (live batches are extracted and scored in other passes)
    assert from_file.exit_code == 0, from_file.output
    rows = pd.read_csv(tmp_path / "file.csv", index_col="packet")
    assert rows.index.equals(live.index)
    for column in ("timestamp", "src", "dst", "channel", "alert", "alert_w3"):
        assert rows[column].equals(live[column]), column
    np.testing.assert_allclose(live["score"], rows["score"], rtol=1e-5)
    from_csv = [json.loads(line) for line in (tmp_path / "file.jsonl").read_text().splitlines()]
    assert [{**e, "score": None} for e in episodes] == [{**e, "score": None} for e in from_csv]
    np.testing.assert_allclose([e["score"] for e in episodes], [e["score"] for e in from_csv], rtol=1e-5)


def test_sigint_with_a_run_directory_ends_cleanly_with_json_on_stdout(run_and_bundle, namespace, replay_pcap,
                                                                      tmp_path):
    # Prepare: --model (torch) and --alerts -, so stdout carries the JSON lines alone
    run, _ = run_and_bundle
    out = tmp_path / "live.csv"
    detect = subprocess.Popen(in_namespace(namespace, sys.executable, "-m", "fedcl.cli.main", "detect",
                                           "--interface", "vb", "--model", str(run), "--node", NODE,
                                           "--out", str(out), "--alerts", "-"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: out.exists() or detect.poll() is not None, 120)

    # Execute
    sent = replay(namespace, replay_pcap)
    assert wait_until(lambda: rows_written(out) >= sent, 30)
    code, stdout, stderr = stop(detect, signal.SIGINT)

    # Assert: exit 0, JSON lines on stdout (the flood among them), the summary on stderr
    assert code == 0, stderr
    assert "Traceback" not in stderr and "interrupted" not in stderr
    episodes = [json.loads(line) for line in stdout.splitlines()]
    assert any(e["src"] == FLOOD for e in episodes)
    assert stderr.startswith("900 packets; per-packet alerts")
    assert "interface vb: 900 packets received, 0 dropped" in stderr
    assert f"alarm episodes: {len(episodes):,} (stdout)" in stderr


def test_an_idle_interface_stops_at_once_and_keeps_an_empty_csv(run_and_bundle, namespace, tmp_path):
    # Prepare
    _, bundle = run_and_bundle
    out, alerts = tmp_path / "quiet.csv", tmp_path / "quiet.jsonl"
    detect = start_detect(namespace, bundle, out, alerts)

    # Execute: nothing is sent
    time.sleep(0.5)
    began = time.monotonic()
    code, stdout, stderr = stop(detect)

    # Assert: the stop did not wait for a packet
    assert code == 0, stderr
    assert time.monotonic() - began < 5
    assert stdout.startswith("0 packets;") and "interface vb: 0 packets received" in stdout
    assert out.read_text().splitlines() == ["packet,timestamp,src,dst,channel,score,alert,alert_w" +
                                            stdout.split("window ")[1].split(":")[0]]
    assert alerts.read_text() == ""


def test_an_interface_that_goes_away_exits_2_in_one_line_keeping_the_rows(run_and_bundle, namespace, replay_pcap,
                                                                         tmp_path):
    # Prepare: a second veth pair of its own, vc <-> vd, captured on vd
    _, bundle = run_and_bundle
    subprocess.run(["ip", "-n", namespace, "link", "add", "vc", "type", "veth", "peer", "name", "vd"], check=True)
    for link in ("vc", "vd"):
        subprocess.run(["ip", "-n", namespace, "link", "set", link, "up"], check=True)
    out = tmp_path / "gone.csv"
    detect = subprocess.Popen(in_namespace(namespace, sys.executable, "-m", "fedcl.cli.main", "detect",
                                           "--interface", "vd", "--bundle", str(bundle), "--out", str(out)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: out.exists() or detect.poll() is not None, 120)
    sent = replay(namespace, replay_pcap, interface="vc")
    assert wait_until(lambda: rows_written(out) >= sent, 30)

    # Execute: the pair is deleted under the capture
    subprocess.run(["ip", "-n", namespace, "link", "del", "vc"], check=True)
    _, stderr = detect.communicate(timeout=60)

    # Assert
    assert detect.returncode == 2, stderr
    assert stderr.splitlines() == [f"error: vd: capture stopped: The interface went down; wrote the rows of those "
                                   f"{sent} packets to {out}"]
    assert rows_written(out) == sent


@pytest.mark.parametrize("argv, message", [
    (["--interface", "fedcl-nope0"], "error: fedcl-nope0: no such network interface"),
    (["--interface", "lo", "x.pcap"], "error: give a traffic file or --interface, not both"),
    ([], "error: give a traffic file, or --interface to capture live"),
])
def test_bad_interfaces_exit_2_in_one_line(run_and_bundle, tmp_path, argv, message):
    # Prepare
    _, bundle = run_and_bundle
    out = tmp_path / "o.csv"

    # Execute
    result = runner.invoke(app, ["detect", *argv, "--bundle", str(bundle), "--out", str(out)])

    # Assert
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [message]
    assert not out.exists()


def test_capture_not_permitted_exits_2_in_one_line(run_and_bundle, tmp_path):
    # Prepare: root without CAP_NET_RAW, on loopback (which exists, and nothing is captured on it)
    _, bundle = run_and_bundle
    out = tmp_path / "o.csv"
    argv = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", sys.executable, "-m", "fedcl.cli.main",
            "detect", "--interface", "lo", "--bundle", str(bundle), "--out", str(out)]

    # Execute
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)

    # Assert
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cannot capture on lo:") and len(done.stderr.splitlines()) == 1
    assert "permission denied" in done.stderr
    assert not out.exists()


def test_a_signal_ends_the_batches_and_a_second_one_interrupts():
    # Prepare: loopback, in this process (what other jobs send on it does not matter here)
    from fedcl.traffic import LiveCapture, stop_capture_on_signals

    with LiveCapture("lo", latency=0.05) as capture, stop_capture_on_signals(capture):
        # Execute
        os.kill(os.getpid(), signal.SIGTERM)
        n_batches = sum(1 for _ in capture.batches())
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)

    # Assert: the batches ended at once; the handlers are back; the counts outlive the handle
    assert n_batches == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert len(capture.stats()) == 3


def test_an_episode_of_a_silent_channel_ends_after_the_idle_time():
    # Prepare: channel A alarmed 20 s ago and silent since; channel B alarmed just now
    from fedcl.cli.detect import _EPISODE_IDLE
    from fedcl.edge import EpisodeBuilder

    now = time.time()
    frame = pd.DataFrame({"timestamp": [now - 20, now - 20, now], "src": ["A", "A", "B"], "dst": "x",
                          "score": [9.0, 9.0, 9.0], "alert": [1, 1, 1], "alert_w1": [1, 1, 1]})
    builder = EpisodeBuilder(1, node="n", threshold=1.0, model="h", idle=_EPISODE_IDLE)

    # Execute
    released = builder.update(frame)
    later = builder.close()

    # Assert: A's episode comes out at once; B's stays open until its channel is silent too (here: the close)
    assert _EPISODE_IDLE < 20
    assert [(e["src"], e["packets"]) for e in released] == [("A", 2)]
    assert [(e["src"], e["packets"]) for e in later] == [("B", 1)]


def test_a_scorer_behind_the_capture_does_not_split_episodes():
    # Prepare: two batches of one alarmed channel, captured a minute ago (the scorer fell behind)
    from fedcl.cli.detect import _EPISODE_IDLE
    from fedcl.edge import EpisodeBuilder

    then = time.time() - 60
    batches = [pd.DataFrame({"timestamp": [then + i, then + i + 0.5], "src": "A", "dst": "x", "score": 9.0,
                             "alert": 1, "alert_w1": 1}, index=[2 * i, 2 * i + 1]) for i in range(2)]
    builder = EpisodeBuilder(1, node="n", threshold=1.0, model="h", idle=_EPISODE_IDLE)

    # Execute
    released = [e for frame in batches for e in builder.update(frame)]

    # Assert: silence is measured in capture time while packets come: one episode, still open
    assert released == []
    assert [(e["src"], e["packets"]) for e in builder.close()] == [("A", 4)]


# Runs `fedcl detect` (argv after the script), then prints which of torch, flwr and onnxruntime it imported.
_MODULES_AFTER = (
    "import json, sys\n"
    "from fedcl.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:], standalone_mode=False)\n"
    "finally:\n"
    "    print(json.dumps(sorted(m for m in ('torch', 'flwr', 'onnxruntime') if m in sys.modules)))\n"
)
