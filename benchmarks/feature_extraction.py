"""Packets per second of the N-BaIoT feature extractor, and of `fedcl features` end to end, on a generated capture.

    .venv/bin/python benchmarks/feature_extraction.py [--packets 1000000] [--reference-packets 20000]

Writes a synthetic pcap (20 hosts, 300 flows over TCP/UDP/ICMP/ARP, IPv4 and IPv6, replies in
both directions; synthetic traffic, 1 M packets by default) with dpkt, then times, in the same run:

- decoding alone: dpkt for every frame; a reader one frame at a time as before (fixed offsets with
  ``struct``, dpkt for the rest); the bulk decoder (``CaptureReader.batches``: numba scans the records
  and reads the fields of common frames, dpkt reads the rest), and ``read_packets`` (the same, as
  Packet objects);
- the extractor alone on the decoded batches: the numba loop, and the numpy path it replaces;
- reading + extracting into memory (``extract_features``);
- `fedcl features` end to end into a CSV and into a Parquet file, each in a fresh process, timed around
  the command inside it: numba's import and the loading of its cached machine code count, Python's
  start-up and fedcl's imports do not;
- the first numba call in a fresh process (cached machine code loaded) and without the cache (compiled);
  the in-process timings run after it (warm), the end-to-end ones include it;
- CSV writing alone as `fedcl features` did it before pyarrow (``repr`` of every value) and as it does
  now, and Parquet writing alone, on the first rows; and the straightforward per-packet pure-Python
  ReferenceExtractor (on the first packets only: it is slow).

The last ratio is extractor / reference packets per second; the two also agree on the packets both
processed. Decoding and extraction use one core; FeatureWriter formats in a second thread, overlapped
with them (numba's loops release the GIL).
"""

from __future__ import annotations

import argparse
import itertools
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fedcl.data import COLUMNS
from fedcl.traffic import CaptureReader, FeatureExtractor, FeatureWriter, extract_features, read_packets, \
    write_synthetic_capture
from fedcl.traffic._frames import _decode, _decode_dpkt
from kitsune_reference import ReferenceExtractor  # beside this script


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} packets/s  ({n:,} packets, {seconds:.2f} s)"


def per_frame(path: Path, decode=_decode):
    """Packets of a little-endian microsecond pcap, one frame at a time, as CaptureReader read them before
    (``_decode``: fixed offsets with ``struct``, dpkt for other frames)."""
    with path.open("rb") as f:
        f.read(24)
        record, read = struct.Struct("<IIII"), f.read
        while raw := read(16):
            sec, frac, caplen, wirelen = record.unpack(raw)
            packet = decode(sec + frac / 1e6, wirelen, read(caplen))
            if packet is not None:
                yield packet


def write_csv_repr(path: Path, rows: np.ndarray) -> None:
    """CSV as `fedcl features` wrote it before pyarrow: ``repr`` of every value, joined in Python."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(",".join(COLUMNS) + "\n")
        f.write("".join(",".join(map(repr, row)) + "\n" for row in rows.tolist()))


def write_csv_pyarrow(path: Path, rows: np.ndarray) -> None:
    with FeatureWriter(path) as out:
        out.write(rows)


FRESH = """
import contextlib, io, sys, time
from pathlib import Path
from fedcl.cli.traffic import features_command
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    features_command(Path(sys.argv[1]), Path(sys.argv[2]))
print(time.perf_counter() - start)
"""

FIRST_CALL = """
import sys, time
from fedcl.traffic import CaptureReader, FeatureExtractor
start = time.perf_counter()
FeatureExtractor().extract(next(CaptureReader(sys.argv[1]).batches(size=100)))
print(time.perf_counter() - start)
"""


def in_fresh_process(code: str, *args: str, env: dict | None = None) -> float:
    """Seconds ``code`` prints, run by a new interpreter."""
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    return float(done.stdout.split()[-1])


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def extract_all(batches, compiled: bool, keep: int) -> np.ndarray:
    """Extract every batch, keeping the first ``keep`` rows (all 1 M rows would take 0.9 GB)."""
    extractor, kept, n = FeatureExtractor(compiled=compiled), [], 0
    for batch in batches:
        rows = extractor.extract(batch)
        if n < keep:
            kept.append(rows[: keep - n])
        n += len(rows)
    return np.vstack(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--reference-packets", type=int, default=20_000)
    parser.add_argument("--writer-rows", type=int, default=100_000,
                        help="rows for the CSV writers alone (the repr one does ~5 k rows/s)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs of each timing")
    args = parser.parse_args()
    count = lambda packets: sum(1 for _ in packets)  # noqa: E731

    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "synthetic.pcap"
        write_synthetic_capture(capture, args.packets, seed=0)
        n_ref = min(args.reference_packets, args.packets)
        first_call_cached = in_fresh_process(FIRST_CALL, str(capture))
        first_call_compiling = in_fresh_process(FIRST_CALL, str(capture), env={"NUMBA_CACHE_DIR": f"{tmp}/jit"})
        FeatureExtractor().extract(next(CaptureReader(capture).batches(size=100)))  # warm: numba loaded
        dpkt_s, _ = best_of(args.repeats, lambda: count(per_frame(capture, _decode_dpkt)))
        frame_s, _ = best_of(args.repeats, lambda: count(per_frame(capture)))
        bulk_s, batches = best_of(args.repeats, lambda: list(CaptureReader(capture).batches()))
        objects_s, n = best_of(args.repeats, lambda: count(read_packets(capture)))
        assert n == sum(map(len, batches)) == args.packets
        sample = 200_000  # decoders agree packet for packet (on the first packets: lists of 1 M take GBs)
        assert list(itertools.islice(per_frame(capture, _decode_dpkt), sample)) == \
            list(itertools.islice(read_packets(capture), sample))
        fast_s, rows = best_of(args.repeats, lambda: extract_all(batches, True, n_ref))
        numpy_s, numpy_rows = best_of(args.repeats, lambda: extract_all(batches, False, n_ref))
        both_s, _ = best_of(args.repeats, lambda: extract_features(capture))
        csv_s = min(in_fresh_process(FRESH, str(capture), f"{tmp}/features.csv") for _ in range(args.repeats))
        parquet_s = min(in_fresh_process(FRESH, str(capture), f"{tmp}/features.parquet") for _ in range(args.repeats))
        sizes = {fmt: (Path(tmp) / f"features.{fmt}").stat().st_size for fmt in ("csv", "parquet")}
        head = extract_all(batches, True, args.writer_rows)
        repr_s, _ = best_of(1, lambda: write_csv_repr(Path(tmp) / "repr.csv", head))
        arrow_s, _ = best_of(args.repeats, lambda: write_csv_pyarrow(Path(tmp) / "arrow.csv", head))
        pq_s, _ = best_of(args.repeats, lambda: write_csv_pyarrow(Path(tmp) / "alone.parquet", head))
        packets = list(itertools.islice(read_packets(capture), n_ref))
        ref_s, ref_rows = best_of(1, lambda: ReferenceExtractor().extract(packets))

    ref_rows = np.array(ref_rows)
    scale = np.abs(ref_rows).max(axis=0) + 1e-300
    worst = float((np.abs(rows - ref_rows) / scale).max())
    pcc = np.array([c.endswith("_pcc") for c in COLUMNS])
    paths = np.abs(rows - numpy_rows) / (np.abs(numpy_rows).max(axis=0) + 1e-300)
    print(f"capture: {n:,} packets, {capture.name}")
    print(f"first numba call in a fresh process: {first_call_cached:.2f} s with its cache "
          f"({first_call_compiling:.2f} s compiling)")
    print(f"decode (dpkt for every frame)  {rate(n, dpkt_s)}")
    print(f"decode (per frame, struct)     {rate(n, frame_s)}  {dpkt_s / frame_s:.1f}x dpkt alone")
    print(f"decode (bulk: batches)         {rate(n, bulk_s)}  {dpkt_s / bulk_s:.1f}x dpkt alone, "
          f"{frame_s / bulk_s:.1f}x per frame")
    print(f"read_packets (Packet objects)  {rate(n, objects_s)}")
    print(f"FeatureExtractor (numba)       {rate(n, fast_s)}")
    print(f"FeatureExtractor (numpy path)  {rate(n, numpy_s)}  numba {numpy_s / fast_s:.1f}x; first {n_ref:,} rows "
          f"differ by ≤ {paths[:, ~pcc].max():.1e} of a column's scale, pcc ≤ {paths[:, pcc].max():.1e}")
    print(f"read + extract (in memory)     {rate(n, both_s)}")
    for fmt, seconds in (("CSV", csv_s), ("Parquet", parquet_s)):
        print(f"fedcl features → {fmt:<13} {rate(n, seconds)}  {fast_s / seconds:.2f} of the extractor alone, "
              f"{bulk_s / seconds:.2f} of decoding alone, {sizes[fmt.lower()] / n:,.0f} bytes/row")
    print(f"CSV writing alone, {len(head):,} rows: repr (before) {len(head) / repr_s:,.0f} rows/s, "
          f"pyarrow {len(head) / arrow_s:,.0f} rows/s ({repr_s / arrow_s:.1f}x); Parquet writing alone "
          f"{len(head) / pq_s:,.0f} rows/s")
    print(f"end to end / extractor alone ({n / fast_s:,.0f} packets/s): csv {fast_s / csv_s:.2f}, "
          f"parquet {fast_s / parquet_s:.2f}; / decoding alone ({n / bulk_s:,.0f} packets/s): "
          f"csv {bulk_s / csv_s:.2f}, parquet {bulk_s / parquet_s:.2f}")
    print(f"ReferenceExtractor             {rate(n_ref, ref_s)}")
    print(f"speed-up over reference: {(n / fast_s) / (n_ref / ref_s):.1f}x; "
          f"largest difference / column scale: {worst:.1e}")


if __name__ == "__main__":
    main()
