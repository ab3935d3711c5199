"""Packets per second of the N-BaIoT feature extractor on a generated capture.

    .venv/bin/python benchmarks/feature_extraction.py [--packets 100000] [--reference-packets 20000]

Writes a synthetic pcap (20 hosts, 300 flows over TCP/UDP/ICMP/ARP, IPv4 and IPv6, replies in
both directions) with dpkt, then times, on one core and in the same run: reading the capture (with
the fixed-offset IPv4/IPv6 decoder, and with dpkt for every frame as before it, for the ratio),
the vectorised FeatureExtractor on the packets read, reading + extracting together, and the
straightforward per-packet pure-Python ReferenceExtractor (on the first packets only: it is
slow). The ratio is extractor / reference packets per second; the two also agree on the
packets both processed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from fedcl.traffic import FeatureExtractor, extract_features, read_packets, write_synthetic_capture
from fedcl.traffic._packets import _decode_dpkt
from kitsune_reference import ReferenceExtractor  # beside this script


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} packets/s  ({n:,} packets, {seconds:.2f} s)"


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--reference-packets", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "synthetic.pcap"
        write_synthetic_capture(capture, args.packets, seed=0)
        read_s, packets = best_of(args.repeats, lambda: list(read_packets(capture)))
        with mock.patch("fedcl.traffic._packets._decode", _decode_dpkt):  # every frame through dpkt
            dpkt_s, dpkt_packets = best_of(args.repeats, lambda: list(read_packets(capture)))
        assert dpkt_packets == packets
        fast_s, rows = best_of(args.repeats, lambda: FeatureExtractor().extract(packets))
        both_s, _ = best_of(args.repeats, lambda: extract_features(capture))
        n_ref = min(args.reference_packets, len(packets))
        ref_s, ref_rows = best_of(1, lambda: ReferenceExtractor().extract(packets[:n_ref]))

    scale = np.abs(ref_rows).max(axis=0) + 1e-300
    worst = float((np.abs(rows[:n_ref] - np.array(ref_rows)) / scale).max())
    print(f"capture: {len(packets):,} packets, {capture.name}")
    print(f"read (dpkt for every frame) {rate(len(packets), dpkt_s)}")
    print(f"read (fixed offsets + dpkt) {rate(len(packets), read_s)}  {dpkt_s / read_s:.1f}x dpkt alone")
    print(f"FeatureExtractor            {rate(len(packets), fast_s)}")
    print(f"read + extract (end to end) {rate(len(packets), both_s)}")
    print(f"ReferenceExtractor          {rate(n_ref, ref_s)}")
    print(f"speed-up over reference: {(len(packets) / fast_s) / (n_ref / ref_s):.1f}x; "
          f"largest difference / column scale: {worst:.1e}")


if __name__ == "__main__":
    main()
