"""The figures of docs/simulated-network.md: size and cost of the simulated network, and how it compares with real rows.

    .venv/bin/python benchmarks/simulated_realism.py [DATA] [--danmini CSV] [--seed 0] [--scale 1.0] [--mild-scale 0.3]

Simulates the network with `fedcl data simulate` (a subprocess, so its wall time and peak memory are
the CLI's) into a temporary folder, then prints: rows, files, attack intensities and disk size;
packet sizes of the benign pcaps; how different the devices are (median `MI_dir_L0.01_mean`, two-sample
KS statistics); quartiles of log10(1 + |x|) per (stream, statistic), pooled over the five λ, simulated
against the real benign rows of DATA (fedmse-iid `normal`, all nine devices), and how far the real
Danmini sample (--danmini) is from that real pool; size means, weights and Danmini's packet size; a
k-NN detector per simulated device (first 60 % of its benign rows, in time order, against the last
40 % and all its attack rows); and, from a second simulation at --mild-scale, Danmini's send rate in
its mild attacks and its floods. The last line prints the headline figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from fedcl.baselines import KNNDetector
from fedcl.data import COLUMNS, read_dataset
from fedcl.traffic import DEVICES, read_packets, simulate_network

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"
LAMBDAS = ("5", "3", "1", "0.1", "0.01")


def log_abs(x: np.ndarray) -> np.ndarray:
    return np.log10(1.0 + np.abs(x))


def families() -> dict[tuple[str, str], list[int]]:
    """Column indices by (stream, statistic), e.g. ("HH", "radius"), pooled over the 5 λ."""
    groups: dict = {}
    for j, c in enumerate(COLUMNS):
        stream = "HH_jit" if c.startswith("HH_jit") else c.split("_")[0]
        groups.setdefault((stream, c.rsplit("_", 1)[1]), []).append(j)
    return groups


def quartiles(x: np.ndarray) -> np.ndarray:
    return np.quantile(log_abs(x), [0.25, 0.5, 0.75])


def send_rate(path: Path, mac: bytes) -> float:
    """Median, over the packets the device sent, of how many it sent in the next second."""
    t = np.array([p.timestamp for p in read_packets(path) if p.src_mac == mac])
    return float(np.median(np.searchsorted(t, t + 1.0) - np.arange(len(t))))


def simulate_cli(out: Path, seed: int, scale: float) -> tuple[float, float]:
    """Run `fedcl data simulate`; wall seconds and the CLI's peak resident memory in MiB (NaN without
    GNU time: a forked child's high-water mark would include this process's own memory)."""
    command = [str(Path(sys.executable).with_name("fedcl")), "data", "simulate", str(out),
               "--seed", str(seed), "--scale", str(scale)]
    gnu_time = shutil.which("time", path="/usr/bin")
    start = time.perf_counter()
    done = subprocess.run(([gnu_time, "-f", "%M"] if gnu_time else []) + command,
                          check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    peak_kb = float(done.stderr.strip().splitlines()[-1]) if gnu_time else float("nan")
    return wall, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--danmini", default=None,
                        help="real Danmini benign CSV (default: uci-sample beside DATA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--mild-scale", type=float, default=0.3)
    args = parser.parse_args()
    danmini_csv = Path(args.danmini or Path(args.data).parent / "uci-sample" / "Danmini_Doorbell" / "benign_traffic.csv")

    with tempfile.TemporaryDirectory() as tmp:
        sim_dir = Path(tmp) / "sim"
        wall, peak_mb = simulate_cli(sim_dir, args.seed, args.scale)
        meta = json.loads((sim_dir / "SIMULATION.json").read_text())
        disk = sum(p.stat().st_size for p in sim_dir.rglob("*") if p.is_file())
        pcap_sizes = np.array([p.size for d in DEVICES for p in read_packets(sim_dir / d.name / "benign_traffic.pcap")])
        nodes = {n.name: n for n in read_dataset(sim_dir, "uci")}

        # --- size and cost
        files = meta["files"]
        benign = {rel.split("/")[0]: info for rel, info in files.items() if rel.endswith("benign_traffic.csv")}
        attack = {rel: info for rel, info in files.items() if "intensity" in info}
        n_benign = sum(i["rows"] for i in benign.values())
        n_attack = sum(i["rows"] for i in attack.values())
        intensities = pd.Series([i["intensity"] for i in attack.values()]).value_counts()
        print(f"simulate seed {args.seed}, scale {args.scale:g}: {wall:.1f} s wall (CLI), {peak_mb:.0f} MiB peak, "
              f"{meta['rows']:,} rows in {len(files)} captures, {disk / 1e6:.0f} MB ({disk / 2**20:.0f} MiB) on disk "
              f"({disk / meta['rows'] / 1e3:.1f} kB per row)")
        print(f"benign {n_benign:,} rows ({min(i['rows'] for i in benign.values()):,}-"
              f"{max(i['rows'] for i in benign.values()):,} per device); attack {n_attack:,} rows "
              f"({min(i['rows'] for i in attack.values()):,}-{max(i['rows'] for i in attack.values()):,} "
              f"per file, {len(attack)} files); intensities: "
              + ", ".join(f"{k} {v}" for k, v in intensities.items()))
        pps = [i["attack_pps"] for i in attack.values() if i["intensity"] == "flood"]
        print(f"flood rates {min(pps):,.0f}-{max(pps):,.0f} packets/s")
        for name, info in benign.items():
            print(f"  {name:42s} {info['rows']:6,d} benign rows  {info['seconds']:8,.0f} s")
        print(f"benign pcap frames: {pcap_sizes.min()}-{pcap_sizes.max()} bytes, median {np.median(pcap_sizes):.0f}")

        # --- devices differ
        j = COLUMNS.index("MI_dir_L0.01_mean")
        medians = {name: float(np.median(n.benign[:, j])) for name, n in nodes.items()}
        names = sorted(nodes)
        ks = [ks_2samp(nodes[a].benign[:, j], nodes[b].benign[:, j]).statistic
              for i, a in enumerate(names) for b in names[i + 1:]]
        lo, hi = min(medians, key=medians.get), max(medians, key=medians.get)
        print(f"median MI_dir_L0.01_mean: {medians[lo]:.0f} B ({lo}) to {medians[hi]:.0f} B ({hi}); "
              f"KS over {len(ks)} pairs: min {min(ks):.2f}, median {np.median(ks):.2f}")

        # --- realism against real rows
        sim = np.vstack([n.benign for n in nodes.values()])
        real = np.vstack([pd.read_csv(p, header=None).to_numpy()
                          for p in sorted(Path(args.data).glob("*/normal/data.csv"))])
        danmini = pd.read_csv(danmini_csv).to_numpy()
        print(f"\nquartiles of log10(1 + |x|), simulated / real ({len(sim):,} / {len(real):,} rows); "
              "last column: real Danmini sample vs real pool")
        print(f"{'stream statistic':22s} {'q25':>11s} {'q50':>11s} {'q75':>11s} {'max diff':>8s} {'Danmini':>8s}")
        worst = {}
        for (stream, stat), idx in families().items():
            q_sim, q_real, q_dan = quartiles(sim[:, idx]), quartiles(real[:, idx]), quartiles(danmini[:, idx])
            worst[stream, stat] = float(np.abs(q_sim - q_real).max())
            cells = " ".join(f"{a:4.2f} / {b:4.2f}" for a, b in zip(q_sim, q_real))
            print(f"{stream + ' ' + stat:22s} {cells} {worst[stream, stat]:8.2f} {np.abs(q_dan - q_real).max():8.2f}")
        means = [j for j, c in enumerate(COLUMNS) if c.endswith("_mean") and not c.startswith("HH_jit")]
        weights = [j for j, c in enumerate(COLUMNS) if c.endswith("_weight")]
        dan_cols = [COLUMNS.index(f"MI_dir_L{lam}_mean") for lam in LAMBDAS]
        print(f"size means {sim[:, means].min():.0f}-{sim[:, means].max():.0f} B; median {np.median(sim[:, means]):.0f} "
              f"vs real {np.median(real[:, means]):.0f} B; weights q95 {np.quantile(sim[:, weights], 0.95):.0f} vs real "
              f"{np.quantile(real[:, weights], 0.95):.0f}; Danmini median MI_dir_L*_mean "
              f"{np.median(nodes['Danmini_Doorbell'].benign[:, dan_cols]):.1f} vs real {np.median(danmini[:, dan_cols]):.1f} B")

        # --- detection: k-NN per device, time-ordered split
        print(f"\n{'device':42s} {'AUROC':>6s}  {'weakest file':22s} {'benign test > threshold':>24s}")
        aurocs = {}
        for name in names:
            node = nodes[name]
            cut = int(0.6 * len(node.benign))
            det = KNNDetector().fit(node.benign[:cut])
            b, a = det.decision_function(node.benign[cut:]), det.decision_function(node.attack)
            aurocs[name] = roc_auc_score(np.r_[np.zeros(len(b)), np.ones(len(a))], np.r_[b, a])
            per_file = {f: roc_auc_score(np.r_[np.zeros(len(b)), np.ones(int((node.attack_family == f).sum()))],
                                         np.r_[b, a[node.attack_family == f]])
                        for f in np.unique(node.attack_family)}
            weakest = min(per_file, key=per_file.get)
            print(f"{name:42s} {aurocs[name]:6.3f}  {weakest + f' {per_file[weakest]:.3f}':22s} "
                  f"{(b > det.threshold_).mean():24.0%}")

    # --- mild attacks against floods (Danmini, smaller scale)
    with tempfile.TemporaryDirectory() as tmp:
        small = simulate_network(Path(tmp) / "sim", seed=args.seed, scale=args.mild_scale)
        files = json.loads((small / "SIMULATION.json").read_text())["files"]
        device = DEVICES[0]
        mine = {rel: i for rel, i in files.items() if rel.startswith(device.name) and "intensity" in i}
        rates = {level: [send_rate(small / rel.replace(".csv", ".pcap"), device.mac)
                         for rel, i in mine.items() if i["intensity"] == level] for level in ("mild", "flood")}
    print(f"\n{device.name}, scale {args.mild_scale:g}: median packets sent in the next second: mild "
          f"{max(rates['mild']):.0f} at most, floods {min(rates['flood']):.0f} at least")

    print(f"{meta['rows']:,} rows, {wall:.1f} s, {peak_mb:.0f} MiB peak | KS min {min(ks):.2f} median {np.median(ks):.2f} | "
          f"largest quartile gap {max(worst.values()):.2f} ({' '.join(max(worst, key=worst.get))}) | "
          f"k-NN AUROC {min(aurocs.values()):.3f}-{max(aurocs.values()):.3f} | "
          f"mild {max(rates['mild']):.0f} vs flood {min(rates['flood']):.0f} packets/s")


if __name__ == "__main__":
    main()
