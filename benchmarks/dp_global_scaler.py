"""Would a federation-wide scaler estimated under DP win back what public scaling costs? A design study.

    .venv/bin/python benchmarks/dp_global_scaler.py [DATA] [--cell natural] [--seed 0]

Under record-level DP a node may not scale its rows with its own fitted statistics (one row would move
every row's input), so DP training scales with public statistics, which costs the federation's encoder
most of what it loses (benchmarks/dp_recipe.py). Here every node scales with one scaler for the whole
federation instead: exact (pooled over every node's training rows: not private, the ceiling), or
summed from one Gaussian release per node of its rows' per-feature sums and sums of squares, rows
signed-log, centred and scaled with the public statistics and clipped to ±c first (ℓ2 sensitivity of
replacing one row: c·√115·√(4 + c²)), at ε_s for that release alone (δ = 1e-6), std floored at 0.05
public scales. Trained with the clear recipe (the scaler is the only difference from the default),
federation's encoder alone. Prints pooled AUROC and FPR@TPR0.99 per scaler; the last line compares the
public scaler with the best private one.
"""

from __future__ import annotations

import argparse
from unittest import mock

import numpy as np
from opacus.accountants.utils import get_noise_multiplier

import fedcl.data._preprocess as preprocess
import fedcl.pipeline.training as training
from fedcl.config import FedCLConfig
from fedcl.data import NodeScaler
from fedcl.experiments._benchmark import cell_splits, named_cells, run_cell
from fedcl.experiments._methods import Method, fedcl_method
from fedcl.experiments._runner import one_torch_thread

N_FEATURES = 115
STD_FLOOR = 0.05  # in public scales: below it a noisy second moment says nothing


def private_global_scaler(train_rows: list[np.ndarray], epsilon: float, clip: float,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the signed-log columns from each node's Gaussian release of clipped sums."""
    centre, scale = preprocess.public_statistics("nbaiot", N_FEATURES)
    z = get_noise_multiplier(target_epsilon=epsilon, target_delta=1e-6, sample_rate=1.0, steps=1, accountant="rdp")
    sensitivity = clip * np.sqrt(N_FEATURES) * np.sqrt(4 + clip**2)
    first, second, n = np.zeros(N_FEATURES), np.zeros(N_FEATURES), 0
    for rows in train_rows:
        u = np.clip(np.nan_to_num((preprocess.signed_log1p(rows) - centre) / scale), -clip, clip)
        first += u.sum(axis=0) + rng.normal(0, z * sensitivity, N_FEATURES)
        second += (u * u).sum(axis=0) + rng.normal(0, z * sensitivity, N_FEATURES)
        n += len(u)
    mean = first / n
    return centre + scale * mean, scale * np.sqrt(np.maximum(second / n - mean**2, STD_FLOOR**2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="../shared/data/nbaiot/fedmse-iid")
    parser.add_argument("--cell", default="natural")
    parser.add_argument("--seed", type=int, default=0, help="0: the development seed")
    args = parser.parse_args()
    (cell,) = named_cells([args.data], False, [args.cell])
    config = FedCLConfig(data=cell.data, seed=args.seed)
    splits = cell_splits(cell, config, False)
    rows = [s.train for s in splits]
    scalers = {"public": preprocess.public_statistics("nbaiot", N_FEATURES),
               "federation-wide, exact (not private)": preprocess.nan_mean_std(preprocess.signed_log1p(np.vstack(rows)))}
    rng = np.random.default_rng(args.seed)
    for epsilon in (0.5, 1.0):
        for clip in (2.0, 4.0):
            scalers[f"federation-wide, DP ε_s={epsilon:g}, c={clip:g}"] = private_global_scaler(rows, epsilon, clip, rng)
    figures = {}
    public_scaler = lambda private=False, schema="nbaiot": NodeScaler(keep_missing=True, public="nbaiot")  # noqa: E731
    with one_torch_thread():
        for name, (mean, std) in scalers.items():
            statistics = lambda schema, n, mean=mean, std=std: (mean.copy(), std.copy())  # noqa: E731
            with mock.patch.object(training, "training_scaler", public_scaler), \
                    mock.patch.object(preprocess, "public_statistics", statistics):
                row = run_cell(cell, Method(name, "ablation", fedcl_method(personalisation="off")), config, splits)
            figures[name] = (row["auroc"], row["fpr_at_tpr99"])
            print(f"{cell.name} | seed {args.seed} | {name}: AUROC {row['auroc']:.4f}, "
                  f"FPR@TPR0.99 {row['fpr_at_tpr99']:.4f}", flush=True)
    best = max((k for k in figures if "DP" in k), key=lambda k: figures[k][0])
    print(f"public scaler AUROC {figures['public'][0]:.4f}; best private federation-wide scaler ({best}) "
          f"{figures[best][0]:.4f}; exact {figures['federation-wide, exact (not private)'][0]:.4f}")


if __name__ == "__main__":
    main()
