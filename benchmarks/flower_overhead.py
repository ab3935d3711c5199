"""Flower in-process path versus the plain in-process runner, and bytes on the wire per node per round.

    .venv/bin/python benchmarks/flower_overhead.py [--data PATH] [--rounds N] [--repeats R]

Both paths train the same federation (same seed, same result); the ratio of their wall times is the
cost of going through Flower's records, strategy and ClientApp. Message sizes are the protobuf
sizes of the records each node receives (θ, g, config) and sends back (θ_i and its statistics).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

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
        self.sent, self.received, self.messages = 0, 0, 0

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.sent += sum(recorddict_to_proto(m.content).ByteSize() for m in messages)
        replies = list(super().send_and_receive(messages, timeout=timeout))
        self.received += sum(recorddict_to_proto(r.content).ByteSize() for r in replies)
        self.messages += len(replies)
        return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
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
        grid = MeasuringGrid(client_app, nodes)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_server(grid, config, tmp, min_nodes=len(nodes))
            flower.append(time.perf_counter() - start)

    per_message_down = grid.sent / grid.messages
    per_message_up = grid.received / grid.messages
    print(f"{len(nodes)} nodes x {args.rounds} rounds, best of {args.repeats}")
    print(f"plain in-process runner      {min(plain):7.2f} s")
    print(f"Flower apps, in-process grid {min(flower):7.2f} s   ratio {min(flower) / min(plain):.2f}x "
          "(node data are read once per process, then cached)")
    print(f"bytes per node per round: server -> node {per_message_down:,.0f} (θ, g, config); "
          f"node -> server {per_message_up:,.0f} (θ_i, n_i, μ_i, d_i, losses)")


if __name__ == "__main__":
    main()
