"""Flower in-process path versus the plain in-process runner, and bytes on the wire per node per round.

    .venv/bin/python benchmarks/flower_overhead.py [--data PATH] [--rounds N] [--repeats R] [--bits B]

Both paths train the same federation (same seed, same result); the ratio of their wall times is the
cost of going through Flower's records, strategy and ClientApp. Message sizes are the protobuf
sizes of the records each node receives (θ, g, config) and sends back (θ_i and its statistics),
with θ in float32 and with ``--bits`` bits per parameter each way (``compression_bits``, default 4).
The last line gives the larger direction's mean over the run under compression.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from flwr.common.serde import recorddict_to_proto

from fedcl.config import FedCLConfig
from fedcl.federated import run_federation
from fedcl.federated.flower import InProcessGrid, run_server
from fedcl.federated.flower.client_app import app as client_app
from fedcl.pipeline import load_splits, scaled_training_rows

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"


class MeasuringGrid(InProcessGrid):
    """Counts the serialised bytes of every message each way."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.down, self.up = [], []  # bytes of every message, in order

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.down += [recorddict_to_proto(m.content).ByteSize() for m in messages]
        replies = list(super().send_and_receive(messages, timeout=timeout))
        self.up += [recorddict_to_proto(r.content).ByteSize() for r in replies]
        return replies


def wire(config: FedCLConfig, nodes: list[dict]) -> MeasuringGrid:
    """The message sizes of one Flower run of ``config``."""
    grid = MeasuringGrid(client_app, nodes)
    with tempfile.TemporaryDirectory() as tmp:
        run_server(grid, config, tmp, min_nodes=len(nodes))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bits", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)

    config = FedCLConfig(data=args.data, rounds=args.rounds)
    splits = load_splits(config)
    rows = {s.name: scaled_training_rows(s) for s in splits}
    nodes = [{"data-path": args.data, "node-name": s.name, "partition-id": i} for i, s in enumerate(splits)]

    plain, flower = [], []
    for _ in range(args.repeats):  # alternate, so both see the same machine load
        start = time.perf_counter()
        run_federation(rows, config)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        exact = wire(config, nodes)
        flower.append(time.perf_counter() - start)
    compressed = wire(config.updated(compression_bits=args.bits), nodes)

    print(f"{len(nodes)} nodes x {args.rounds} rounds, best of {args.repeats}")
    print(f"plain in-process runner      {min(plain):7.2f} s")
    print(f"Flower apps, in-process grid {min(flower):7.2f} s   ratio {min(flower) / min(plain):.2f}x "
          "(node data are read once per process, then cached)")
    for label, grid in (("float32", exact), (f"{args.bits}-bit", compressed)):
        print(f"{label:>8}: server -> node {np.mean(grid.down):9,.0f} B (θ or its delta, g, config; "
              f"largest {max(grid.down):,}), node -> server {np.mean(grid.up):9,.0f} B (θ_i or Δθ_i, n_i, μ_i, σ_i, "
              f"d_i, losses; largest {max(grid.up):,})")
    print(f"ratio float32 / {args.bits}-bit (larger direction): "
          f"{max(np.mean(exact.down), np.mean(exact.up)) / max(np.mean(compressed.down), np.mean(compressed.up)):.1f}x")
    print(f"bytes per node per round: {max(np.mean(compressed.down), np.mean(compressed.up)):,.0f}")


if __name__ == "__main__":
    main()
