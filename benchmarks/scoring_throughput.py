"""Batch scoring throughput (rows/s) of a trained fedcl detector on one core, stage by stage.

    .venv/bin/python benchmarks/scoring_throughput.py [--data PATH] [--rows N] [--repeats R]

Trains a short federated run on the data (default: ../shared/data/nbaiot/fedmse-iid), fits one node's
:class:`FedCLDetector` around the federation's encoder, then scores N real rows (tiled) with it. Prints
each stage's rate over the whole batch in the detector's own chunks, today's path against the former one
(``benchmarks/scoring_reference.py``: float64 scaler copy, a tensor per layer, ``torch.topk``) and how far
their scores differ, and last the end-to-end rate. Rates are the best of R calls, the calls of all
variants interleaved, and ratios come from the same run: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.model import FedCLDetector, encoder_for
from fedcl.model._detector import _CHUNK, _ChunkScorer, _knn_scores
from fedcl.pipeline import load_splits, train
from fedcl.rundir import load_model
from scoring_reference import reference_scores

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nbaiot" / "fedmse-iid"
TARGET = 600_000  # rows/s on one core, issue 14


def best_rates(fns: dict[str, Callable[[], object]], rows: int, repeats: int) -> dict[str, float]:
    """Rows per second of each function's fastest call (the least disturbed by other load), calls interleaved."""
    best = dict.fromkeys(fns, np.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: rows / seconds for name, seconds in best.items()}


def trained_detector(config: FedCLConfig, split) -> FedCLDetector:
    """A FedCLDetector of ``split``'s node around the encoder of a short federated run."""
    with tempfile.TemporaryDirectory() as tmp:
        train(config, tmp, splits=load_splits(config))
        saved = load_model(tmp)
    encoder = encoder_for(config, saved["n_features"])
    encoder.load_state_dict(saved["encoder"])
    return FedCLDetector(encoder, normalise=config.node_normalisation, n_neighbors=config.n_neighbors,
                         n_references=config.n_references, fpr_target=config.fpr_target,
                         random_state=config.seed).fit(split.train, X_val=split.val)


def stage_inputs(det: FedCLDetector, x: np.ndarray) -> tuple[list, list]:
    """Each chunk of ``x`` scaled, and its normalised embeddings: the inputs of the later stages."""
    with torch.inference_mode():
        scorer = _ChunkScorer(det, rows=_CHUNK)
        scaled = [det.scaler_.transform(x[lo : lo + _CHUNK]) for lo in range(0, len(x), _CHUNK)]
        z_norm = [scorer.embed(torch.from_numpy(s.copy())).clone() for s in scaled]
    return scaled, z_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    config = FedCLConfig(data=args.data, rounds=args.rounds)
    split = load_splits(config)[0]
    det = trained_detector(config, split)
    torch.set_num_threads(1)  # the target is per core
    pool = np.vstack([split.test_benign, split.attack])
    x = np.resize(pool, (args.rows, pool.shape[1]))  # tile real rows up to N
    scaled, z_norm = stage_inputs(det, x)

    def over_chunks(stage: Callable, inputs: list) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                scorer = _ChunkScorer(det, rows=_CHUNK)
                for item in inputs:
                    stage(scorer, item)
        return run

    def knn(scorer: _ChunkScorer, z: torch.Tensor) -> None:
        _knn_scores(z, scorer.refs, scorer.ref_sq, scorer.k, 0, scorer.dist[: len(z)])

    end_to_end = "end to end (decision_function)"
    stages = {
        end_to_end: lambda: det.decision_function(x),
        "  scaling (NodeScaler.transform)": lambda: [det.scaler_.transform(x[lo : lo + _CHUNK])
                                                     for lo in range(0, len(x), _CHUNK)],
        "  encoder f_θ and (z − μ)/σ": over_chunks(lambda scorer, s: scorer.embed(torch.from_numpy(s)), scaled),
        f"  k-NN score vs {len(det.references_)} references": over_chunks(knn, z_norm),
        "former path (scoring_reference.py)": lambda: reference_scores(det, x),
    }
    rates = best_rates(stages, args.rows, args.repeats)
    total = rates.pop(end_to_end)
    scores, former = det.decision_function(x), reference_scores(det, x)
    print(f"node {split.name}: {args.rows:,} rows, 1 thread, best of {args.repeats}, chunks of {_CHUNK:,} rows")
    for name, rate in rates.items():
        print(f"{name:45s} {rate:>12,.0f} rows/s   {rate / total:5.2f}x end to end")
    print(f"scores vs former path: max relative difference {np.max(np.abs(scores - former) / np.abs(former)):.1e}")
    print(f"target {TARGET:,} rows/s: {'met' if total >= TARGET else 'NOT met'} ({total / TARGET:.2f}x)")
    print(f"{end_to_end:45s} {total:>12,.0f} rows/s   {1:5.2f}x end to end")


if __name__ == "__main__":
    main()
