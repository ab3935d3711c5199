"""Secure aggregation versus the clear server step: time and bytes per node, 10 nodes, the real encoder.

    .venv/bin/python benchmarks/secure_aggregation_overhead.py [--nodes N] [--repeats R]

Both sides run the ``dynamic`` rule on the same synthetic updates of the default encoder's size. The
masked time is every party's work in one process (all nodes' key agreements, Shamir sharing and mask
streams, and the server's unmasking): in a deployment the nodes' part runs in parallel. Bytes per
node: the clear path sends Δθ_i as float32 plus μ_i, σ_i as float64; the masked path sends, for each
of its two masked sums, two public keys, a sealed share pair per node, the uint64 masked vector and
the unmasking shares, plus its d_i.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fedcl.config import FedCLConfig
from fedcl.federated import LocalUpdate, aggregate_round
from fedcl.federated.params import get_arrays
from fedcl.model import initial_encoder
from fedcl.privacy import secure_aggregate_round, secure_sum


def synthetic_updates(arrays: list[np.ndarray], n: int, dim: int) -> list[LocalUpdate]:
    rng = np.random.default_rng(0)
    return [LocalUpdate(delta=[rng.normal(scale=1e-3, size=a.shape).astype(a.dtype) for a in arrays], n_samples=1000,
                        mean_embedding=rng.normal(size=dim), distance=0.0, loss=0.0, contrastive=0.0,
                        std_embedding=rng.uniform(0.5, 2, size=dim)) for _ in range(n)]


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = FedCLConfig()
    arrays = get_arrays(initial_encoder(config, 115))
    n_params, dim = sum(a.size for a in arrays), config.embedding_dim
    updates = synthetic_updates(arrays, args.nodes, dim)

    clear = best_time(lambda: aggregate_round(arrays, updates, "dynamic"), args.repeats)
    masked = best_time(lambda: secure_aggregate_round(arrays, updates, "dynamic"), args.repeats)

    # The two masked sums of a dynamic round, for their message sizes (node 1's).
    stats = secure_sum({i: np.zeros(2 * dim) for i in range(1, args.nodes + 1)})
    model = secure_sum({i: np.zeros(n_params + dim) for i in range(1, args.nodes + 1)})
    clear_bytes = 4 * n_params + 8 * 2 * dim
    masked_bytes = stats.sent_bytes[1] + model.sent_bytes[1] + 8  # + its d_i

    print(f"{args.nodes} nodes, {n_params:,} encoder parameters, embedding size {dim}, rule dynamic")
    print(f"clear server step: {clear * 1e3:.1f} ms; masked (all parties, one process): {masked * 1e3:.1f} ms")
    print(f"bytes per node: clear {clear_bytes:,}; masked {masked_bytes:,}")
    print(f"secure aggregation overhead: {masked / clear:.0f}× time, "
          f"{masked_bytes / clear_bytes:.2f}× bytes per node")


if __name__ == "__main__":
    main()
