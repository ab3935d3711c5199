"""Peak memory of `fedcl detect` on a long capture: streamed chunk by chunk (now) against the whole capture at once
(as the command did before it streamed).

    nice -n 5 .venv/bin/python benchmarks/detect_memory.py [--packets 500000] [--path bundle|model]

Writes a synthetic pcap (``write_synthetic_capture``: 20 hosts, 300 flows; synthetic traffic), trains a tiny
run on tests/nbaiot/fedmse-iid (1 round) and exports Client-1's bundle, then runs, each in a fresh interpreter:
``fedcl detect CAPTURE --bundle DIR --alerts FILE`` (or ``--model RUN --node Client-1`` with ``--path model``),
and the same scoring done the way the command did it before (``fedcl.detect.read_traffic`` holding every
packet and row, ``detect``, ``to_csv`` of the whole frame, ``alert_episodes`` over it). It prints each one's
peak RSS (VmHWM) and wall time, whether the two wrote the same CSV and alerts bytes, and last
``detect <packets> packets: peak RSS <MB> MB (whole) vs <MB> MB (streamed)``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = "Client-1"

# argv: "streamed" | "whole", capture, "--bundle DIR" | "--model RUN", out.csv, alerts.jsonl
CHILD = """
import json, sys
from pathlib import Path
mode, capture, option, source, out, alerts = sys.argv[1:7]
args = [option, source] + (["--node", "Client-1"] if option == "--model" else [])
if mode == "streamed":
    from fedcl.cli import app
    app(["detect", capture, *args, "--out", out, "--alerts", alerts], standalone_mode=False)
else:  # what `fedcl detect` did before it streamed
    from fedcl import detect
    from fedcl.edge import alert_episodes
    scorer = detect.from_bundle(source) if option == "--bundle" else detect.from_run(source, "Client-1")
    features, info = detect.read_traffic(capture, scorer.columns)
    result = detect.detect(scorer.detector, features, info, scorer.window, guard=scorer.leakage_guard)
    result.to_csv(out, index_label="packet")
    detect.summarise_alerts(result, scorer.window)
    episodes = alert_episodes(result, scorer.window, node=scorer.node, threshold=scorer.detector.threshold_,
                              model=scorer.model)
    Path(alerts).write_text("".join(line + "\\n" for line in detect.alert_lines(episodes)), encoding="utf-8")
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, from the parent that started this process
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def measure(mode: str, capture: Path, option: str, source: Path, out: Path) -> dict:
    """One fresh process scoring the capture: its peak RSS and wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(capture), option, str(source),
                           str(out / f"{mode}.csv"), str(out / f"{mode}.jsonl")],
                          capture_output=True, text=True, check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=500_000)
    parser.add_argument("--path", choices=["bundle", "model"], default="bundle",
                        help="score with the exported bundle (ONNX Runtime) or the run directory (torch)")
    args = parser.parse_args()

    from fedcl.config import FedCLConfig
    from fedcl.export import export_node
    from fedcl.pipeline import train
    from fedcl.traffic import write_synthetic_capture

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        capture = tmp / "capture.pcap"
        write_synthetic_capture(capture, args.packets, seed=0)
        capture_mb = capture.stat().st_size / 1e6
        config = FedCLConfig(data=str(ROOT / "tests" / "nbaiot" / "fedmse-iid"), rounds=1, local_steps=3,
                             personalisation="off")
        run = train(config, tmp / "run")
        source = export_node(run, NODE, tmp / "bundle") if args.path == "bundle" else run
        option = f"--{args.path}"
        results = {mode: measure(mode, capture, option, source, tmp) for mode in ("streamed", "whole")}
        same = all(filecmp.cmp(tmp / f"streamed.{ext}", tmp / f"whole.{ext}", shallow=False)
                   for ext in ("csv", "jsonl"))

    for mode, r in results.items():
        print(f"{mode:8s} peak RSS {r['peak_rss_mb']:7.0f} MB  {r['seconds']:6.1f} s wall")
    print(f"{args.path} path, {capture_mb:.0f} MB capture; "
          f"same CSV and alerts bytes: {same}")
    print(f"detect {args.packets:,} packets: peak RSS {results['whole']['peak_rss_mb']:.0f} MB (whole) "
          f"vs {results['streamed']['peak_rss_mb']:.0f} MB (streamed)")


if __name__ == "__main__":
    main()
