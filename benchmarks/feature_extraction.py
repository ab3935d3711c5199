"""Packets per second of the N-BaIoT feature extractor, and of `fedcl features` end to end, on a generated capture.

    .venv/bin/python benchmarks/feature_extraction.py [--packets 1000000] [--reference-packets 20000]

Writes a synthetic pcap (20 hosts, 300 flows over TCP/UDP/ICMP/ARP, IPv4 and IPv6, replies in
both directions; synthetic traffic, 1 M packets by default) with dpkt, then times, in the same run:
reading the capture (with the fixed-offset IPv4/IPv6 decoder, and with dpkt for every frame as
before it, for the ratio), the vectorised FeatureExtractor on the packets read (the extractor
alone), reading + extracting together into memory, `fedcl features` end to end into a CSV and
into a Parquet file (as ratios to the extractor alone), CSV writing alone as `fedcl features` did
it before (``repr`` of every value) and as it does now (pyarrow), on the first rows, and the
straightforward per-packet pure-Python ReferenceExtractor (on the first packets only: it is
slow). The last ratio is extractor / reference packets per second; the two also agree on the
packets both processed. The extractor and the readers use one core; FeatureWriter formats in a
second thread, overlapped with extraction.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from fedcl.cli.traffic import features_command
from fedcl.data import COLUMNS
from fedcl.traffic import FeatureExtractor, FeatureWriter, extract_features, read_packets, write_synthetic_capture
from fedcl.traffic._packets import _decode_dpkt
from kitsune_reference import ReferenceExtractor  # beside this script


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} packets/s  ({n:,} packets, {seconds:.2f} s)"


def write_csv_repr(path: Path, rows: np.ndarray) -> None:
    """CSV as `fedcl features` wrote it before pyarrow: ``repr`` of every value, joined in Python."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(",".join(COLUMNS) + "\n")
        f.write("".join(",".join(map(repr, row)) + "\n" for row in rows.tolist()))


def write_csv_pyarrow(path: Path, rows: np.ndarray) -> None:
    with FeatureWriter(path) as out:
        out.write(rows)


def features_cli(capture: Path, output: Path) -> None:
    """`fedcl features CAPTURE OUTPUT`, its progress bar and summary line silenced."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        features_command(capture, output)


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--reference-packets", type=int, default=20_000)
    parser.add_argument("--writer-rows", type=int, default=100_000,
                        help="rows for the CSV writers alone (the repr one does ~5 k rows/s)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs of each timing")
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
        csv_s, _ = best_of(args.repeats, lambda: features_cli(capture, Path(tmp) / "features.csv"))
        parquet_s, _ = best_of(args.repeats, lambda: features_cli(capture, Path(tmp) / "features.parquet"))
        sizes = {fmt: (Path(tmp) / f"features.{fmt}").stat().st_size for fmt in ("csv", "parquet")}
        head = rows[: args.writer_rows]
        repr_s, _ = best_of(1, lambda: write_csv_repr(Path(tmp) / "repr.csv", head))
        arrow_s, _ = best_of(args.repeats, lambda: write_csv_pyarrow(Path(tmp) / "arrow.csv", head))
        n_ref = min(args.reference_packets, len(packets))
        ref_s, ref_rows = best_of(1, lambda: ReferenceExtractor().extract(packets[:n_ref]))

    scale = np.abs(ref_rows).max(axis=0) + 1e-300
    worst = float((np.abs(rows[:n_ref] - np.array(ref_rows)) / scale).max())
    print(f"capture: {len(packets):,} packets, {capture.name}")
    print(f"read (dpkt for every frame) {rate(len(packets), dpkt_s)}")
    print(f"read (fixed offsets + dpkt) {rate(len(packets), read_s)}  {dpkt_s / read_s:.1f}x dpkt alone")
    print(f"FeatureExtractor            {rate(len(packets), fast_s)}")
    print(f"read + extract (in memory)  {rate(len(packets), both_s)}")
    n = len(packets)
    for fmt, seconds in (("CSV", csv_s), ("Parquet", parquet_s)):
        print(f"fedcl features → {fmt:<10} {rate(n, seconds)}  {fast_s / seconds:.2f} of the extractor alone, "
              f"{sizes[fmt.lower()] / n:,.0f} bytes/row")
    print(f"CSV writing alone, {len(head):,} rows: repr (before) {len(head) / repr_s:,.0f} rows/s, "
          f"pyarrow {len(head) / arrow_s:,.0f} rows/s ({repr_s / arrow_s:.1f}x)")
    print(f"end to end / extractor alone ({n / fast_s:,.0f} packets/s): csv {fast_s / csv_s:.2f}, "
          f"parquet {fast_s / parquet_s:.2f}")
    print(f"ReferenceExtractor          {rate(n_ref, ref_s)}")
    print(f"speed-up over reference: {(len(packets) / fast_s) / (n_ref / ref_s):.1f}x; "
          f"largest difference / column scale: {worst:.1e}")


if __name__ == "__main__":
    main()
