"""Footprint of the two scoring paths: a run directory (torch) against its exported bundle (ONNX Runtime).

    .venv/bin/python benchmarks/bundle_footprint.py [--model RUN --node NAME] [--rows 50000] [--repeats 3]

Without --model, trains a run on tests/nbaiot/fedmse-iid first (2 rounds, personal detectors, the
default). Exports the node's bundle, then starts a fresh interpreter per path and measurement
(``--repeats`` each, alternating) that loads the detector as ``fedcl detect`` does
(``fedcl.detect.from_run`` / ``from_bundle``), scores one row, then scores ``--rows`` real rows
(the node's N-BaIoT rows, repeated; leakage guard applied beforehand). Reported per path: start-up
(process start to the first score, median), peak RSS (largest), rows/s (best), and whether torch
was imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: argv = path kind ("run" or "bundle"), source, node, rows.npy
CHILD = """
import json, sys, time
kind, source, node, rows_file = sys.argv[1:5]
from fedcl import detect
import numpy as np
scorer = detect.from_run(source, node) if kind == "run" else detect.from_bundle(source)
rows = np.load(rows_file)
scorer.detector.decision_function(rows[:1])
first = time.time()
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    scorer.detector.decision_function(rows)
    best = min(best, time.perf_counter() - start)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, from the parent that started this process
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"first_score": first, "rows_per_s": len(rows) / best, "torch": "torch" in sys.modules,
                  "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def measure(kind: str, source: Path, node: str, rows_file: Path) -> dict:
    """One fresh process: its start-up (to the first score), rows/s and peak RSS."""
    start = time.time()
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(source), node, str(rows_file)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "start_up_s": result["first_score"] - start}


def quick_run(out: Path) -> Path:
    """The default run on the shipped N-BaIoT slice, trained in a few seconds of compute."""
    from fedcl.config import FedCLConfig
    from fedcl.pipeline import train

    return train(FedCLConfig(data=str(ROOT / "tests" / "nbaiot" / "fedmse-iid"), rounds=2), out)


def node_rows(run: Path, node: str, n: int) -> np.ndarray:
    """``n`` of the node's real rows (every set, repeated), leakage-guarded as the run's config says."""
    from fedcl.data import leakage_guard
    from fedcl.pipeline import load_run_config, load_splits

    config = load_run_config(run)
    split = next(s for s in load_splits(config) if s.name == node)
    rows = np.vstack([split.train, split.val, split.test_benign, split.attack])
    rows = np.resize(rows, (n, rows.shape[1]))
    return leakage_guard(rows, strict=config.leakage_guard == "strict") if config.leakage_guard != "off" else rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a trained run directory (default: train one)")
    parser.add_argument("--node", default="Client-1")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from fedcl.export import export_node
    from fedcl.rundir import MODEL_FILE

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.model or quick_run(tmp / "run")
        bundle = export_node(run, args.node, tmp / "bundle")
        rows_file = tmp / "rows.npy"
        np.save(rows_file, node_rows(run, args.node, args.rows))
        results = {"run": [], "bundle": []}
        for _ in range(args.repeats):  # alternating, so a load spike on the machine hits both paths
            for kind, source in (("run", run), ("bundle", bundle)):
                results[kind].append(measure(kind, source, args.node, rows_file))
        model_kb = (run / MODEL_FILE).stat().st_size / 1024
        bundle_kb = sum(p.stat().st_size for p in bundle.iterdir()) / 1024

    figures = {}
    for kind, label in (("run", "torch path (run directory)"), ("bundle", "bundle path (ONNX Runtime)")):
        r = results[kind]
        figures[kind] = (statistics.median(x["start_up_s"] for x in r), max(x["peak_rss_mb"] for x in r),
                         max(x["rows_per_s"] for x in r))
        torch_loaded = sorted({x["torch"] for x in r})
        print(f"{label:28s} start-up {figures[kind][0]:5.2f} s  peak RSS {figures[kind][1]:6.0f} MB  "
              f"{figures[kind][2]:>9,.0f} rows/s  torch imported: {torch_loaded}")
    print(f"on disk: model.pt {model_kb:,.0f} kB (all nodes), bundle {bundle_kb:,.0f} kB (node {args.node}); "
          f"{args.rows:,} rows, {args.repeats} processes per path")
    (b_start, b_rss, b_rate), (t_start, t_rss, t_rate) = figures["bundle"], figures["run"]
    print(f"bundle vs torch: start-up {b_start:.2f} vs {t_start:.2f} s, RSS {b_rss:.0f} vs {t_rss:.0f} MB, "
          f"{b_rate:,.0f} vs {t_rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
