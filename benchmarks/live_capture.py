"""Packets per second that `fedcl detect --interface` scores without a drop, on a veth pair in a network
namespace made here (root only; the namespace is deleted at the end).

    .venv/bin/python benchmarks/live_capture.py [--seconds 8] [--bundle DIR]

Trains a tiny run on tests/nbaiot/fedmse-iid and exports Client-1's bundle (unless ``--bundle``), writes a
synthetic capture (``write_synthetic_capture``: 20 hosts, 300 flows), then for each rate starts
``fedcl detect --interface vb --bundle DIR --alerts FILE`` in the namespace, replays the capture's frames into
the other end (``va``) at that rate for ``--seconds`` s with a raw AF_PACKET socket, waits for the CSV to hold
every packet sent and stops the command with SIGTERM. A rate is sustained when the kernel dropped nothing
(libpcap's ``ps_drop``), every frame sent was scored, and the last one within 1 s of being sent (no backlog
building up in the capture ring). Rates double from 1,000 packets/s until one is not sustained, then
bisect twice. First, the capture alone (``LiveCapture``: libpcap and the frame decoder, no features or
scores) under the sender's fastest pace. Prints one line per rate and last
``live capture: <n> packets/s sustained, <d> dropped``.

The helpers (:func:`veth_namespace`, :func:`replay`) are the ones tests/test_live_capture.py uses.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = "Client-1"

# argv: interface, pcap, rate (packets/s, 0: as fast as possible), seconds (0: each frame once)
SENDER = """
import socket, sys, time
import dpkt
iface, pcap, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
with open(pcap, "rb") as f:
    frames = [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 24)
start, sent = time.monotonic(), 0
if rate > 0:  # paced: rate * seconds frames
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            s.send(frames[sent % len(frames)])
            sent += 1
        time.sleep(0.005)
else:  # as fast as this loop goes: each frame once (seconds 0), or cycling through them for `seconds`
    budget = len(frames) if seconds == 0 else float("inf")
    while sent < budget and (seconds == 0 or time.monotonic() - start < seconds):
        burst = frames[sent % len(frames):][:1000]
        for frame in burst:
            s.send(frame)
        sent += len(burst)
print(sent, time.monotonic() - start, flush=True)
"""

# argv: interface. Captures and decodes (no features, no scoring) until SIGTERM; prints packets, libpcap's counts.
CAPTURE_ONLY = """
import sys
from fedcl.traffic import LiveCapture, stop_capture_on_signals
with LiveCapture(sys.argv[1]) as capture, stop_capture_on_signals(capture):
    print("capturing", flush=True)
    for packets in capture.batches():
        pass
print(capture.n_packets, *capture.stats(), flush=True)
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@contextlib.contextmanager
def veth_namespace(prefix: str = "fedcl-live"):
    """A new network namespace holding a veth pair ``va`` <-> ``vb``, both up, IPv6 off (so the kernel sends
    nothing of its own on them); yields the namespace's name and deletes it (and the pair) afterwards."""
    name = f"{prefix}-{os.getpid()}"
    _ip("netns", "add", name)
    try:
        _ip("netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1")
        _ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        for link in ("va", "vb"):
            _ip("-n", name, "link", "set", link, "up")
        yield name
    finally:
        _ip("netns", "del", name, check=False)


def in_namespace(namespace: str, *argv: str) -> list[str]:
    """``argv`` run inside ``namespace``."""
    return ["ip", "netns", "exec", namespace, *argv]


def replay(namespace: str, pcap: Path, interface: str = "va", rate: float = 0, seconds: float = 0) -> int:
    """Send the frames of ``pcap`` out of ``interface`` in ``namespace``: each once as fast as possible
    (``rate`` 0), or cycling through them at ``rate`` packets/s for ``seconds``. Returns the frames sent."""
    done = subprocess.run(in_namespace(namespace, sys.executable, "-c", SENDER, interface, str(pcap), str(rate),
                                       str(seconds)), capture_output=True, text=True, check=True, timeout=600)
    return int(done.stdout.split()[0])


def rows_written(csv: Path) -> int:
    """Data rows in a CSV written so far (its header not counted)."""
    with contextlib.suppress(FileNotFoundError), csv.open("rb") as f:
        return max(sum(1 for _ in f) - 1, 0)
    return 0


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def start_detect(namespace: str, bundle: Path, out: Path, alerts: Path, *extra: str,
                 wrapper: str | None = None) -> subprocess.Popen:
    """``fedcl detect --interface vb --bundle ...`` in ``namespace``, once it is capturing (its CSV exists);
    ``wrapper``: a script run with ``python -c`` that takes the command's argv instead of ``fedcl.cli.main``."""
    program = ["-c", wrapper] if wrapper else ["-m", "fedcl.cli.main"]
    detect = subprocess.Popen(in_namespace(namespace, sys.executable, *program, "detect", "--interface", "vb",
                                           "--bundle", str(bundle), "--out", str(out), "--alerts", str(alerts),
                                           *extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait_until(lambda: out.exists() or detect.poll() is not None, 120):
        detect.kill()
        raise RuntimeError("fedcl detect did not start capturing within 120 s")
    return detect


def stop(detect: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    """Signal ``fedcl detect`` and collect its exit code, stdout and stderr."""
    detect.send_signal(sig)
    out, err = detect.communicate(timeout=60)
    return detect.returncode, out, err


def trial(namespace: str, bundle: Path, pcap: Path, rate: float, seconds: float, work: Path) -> dict:
    """One rate: its packets sent, scored, dropped, and the lag of the last one."""
    out, alerts = work / f"rate-{rate:.0f}.csv", work / f"rate-{rate:.0f}.jsonl"
    detect = start_detect(namespace, bundle, out, alerts)
    sent = replay(namespace, pcap, rate=rate, seconds=seconds)
    sent_at = time.monotonic()
    caught_up = wait_until(lambda: rows_written(out) >= sent, 1.0)
    lag = time.monotonic() - sent_at
    if not caught_up:
        wait_until(lambda: rows_written(out) >= sent, 60)  # let it drain, for the counts
    code, stdout, stderr = stop(detect)
    found = re.search(r"([\d,]+) packets received, ([\d,]+) dropped by the kernel", stdout)
    if code != 0 or found is None:
        raise RuntimeError(f"fedcl detect exited {code}: {stderr.strip()[-2000:]}")
    received, dropped = (int(v.replace(",", "")) for v in found.groups())
    scored = rows_written(out)
    return {"rate": rate, "sent": sent, "received": received, "dropped": dropped, "scored": scored,
            "lag": lag, "sustained": dropped == 0 and scored == sent and caught_up}


def capture_only(namespace: str, pcap: Path, seconds: float) -> str:
    """The capture alone (LiveCapture: libpcap and the frame decoder), under the sender's fastest pace."""
    child = subprocess.Popen(in_namespace(namespace, sys.executable, "-c", CAPTURE_ONLY, "vb"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "capturing", child.stderr.read()
    done = subprocess.run(in_namespace(namespace, sys.executable, "-c", SENDER, "va", str(pcap), "0", str(seconds)),
                          capture_output=True, text=True, check=True, timeout=600)
    sent, elapsed = int(done.stdout.split()[0]), float(done.stdout.split()[1])
    time.sleep(1.0)  # the last ring block is handed over within the capture's latency
    child.send_signal(signal.SIGTERM)
    decoded, _received, dropped, _ = (int(v) for v in child.communicate(timeout=60)[0].split())
    return (f"capture alone (libpcap + decoder, no scoring): {sent:,} packets sent at {sent / elapsed:,.0f}/s, "
            f"{decoded:,} decoded, {dropped:,} dropped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of traffic per rate")
    parser.add_argument("--bundle", type=Path, help="a bundle (default: train a tiny run and export one)")
    parser.add_argument("--max-rate", type=float, default=256_000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("live capture benchmark: needs root (a network namespace and a raw socket)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = args.bundle or _tiny_bundle(work)
        from fedcl.traffic import write_synthetic_capture

        pcap = work / "replay.pcap"
        write_synthetic_capture(pcap, 20_000, seed=0)
        results = []
        with veth_namespace() as namespace:
            print(capture_only(namespace, pcap, args.seconds), flush=True)
            rate = 1000.0
            while rate <= args.max_rate:
                results.append(_report(trial(namespace, bundle, pcap, rate, args.seconds, work)))
                if not results[-1]["sustained"]:
                    break
                rate *= 2
            good = [r["rate"] for r in results if r["sustained"]]
            bad = [r["rate"] for r in results if not r["sustained"]]
            if good and bad:
                lo, hi = max(good), min(bad)
                for _ in range(2):
                    mid = round((lo + hi) / 2, -2)
                    result = _report(trial(namespace, bundle, pcap, mid, args.seconds, work))
                    results.append(result)
                    lo, hi = (mid, hi) if result["sustained"] else (lo, mid)
        best = max((r for r in results if r["sustained"]), key=lambda r: r["rate"], default=None)
        if best is None:
            print(f"live capture: 0 packets/s sustained, {results[0]['dropped']} dropped")
        else:
            print(f"live capture: {best['rate']:,.0f} packets/s sustained, {best['dropped']} dropped "
                  f"({best['sent']:,} packets over {args.seconds:g} s, bundle path; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def _report(result: dict) -> dict:
    print(f"rate {result['rate']:>9,.0f}/s: sent {result['sent']:>9,}  received {result['received']:>9,}  "
          f"dropped {result['dropped']:>7,}  scored {result['scored']:>9,}  last packet scored "
          f"{result['lag']:.2f} s after it was sent  {'sustained' if result['sustained'] else 'NOT sustained'}",
          flush=True)
    return result


def _tiny_bundle(work: Path) -> Path:
    from fedcl.config import FedCLConfig
    from fedcl.experiments._runner import one_torch_thread
    from fedcl.export import export_node
    from fedcl.pipeline import train

    with one_torch_thread():
        run = train(FedCLConfig(data=str(ROOT / "tests" / "nbaiot" / "fedmse-iid"), rounds=1, local_steps=3,
                                personalisation="off"), work / "run")
    return export_node(run, NODE, work / "bundle")


if __name__ == "__main__":
    main()
