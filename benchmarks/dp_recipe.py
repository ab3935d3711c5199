"""What costs the federation's encoder its AUROC under record-level DP: the noise, or the recipe?

    .venv/bin/python benchmarks/dp_recipe.py [DATA] [--cell natural] [--seeds 1]

Trains the federation's encoder (personalisation off) on one benchmark cell five ways, on the same
splits: the clear recipe with each node's own scaler (the default) and with the public scaler DP
training uses; the DP recipe (DP-SGD with per-row clipping and the row-wise contrastive loss,
docs/privacy.md) at ε = 10⁶, where the noise is ~0.008 of the clip, with either scaler (the own scaler
is not private there: an ablation, not a mode); and the DP recipe at ε = 8 with the public scaler (what
`--dp-epsilon 8` runs). Prints pooled AUROC and FPR@TPR0.99 per variant (mean over seeds; seed 0 is the
development seed), then the AUROC each part costs against the clear recipe, last.
"""

from __future__ import annotations

import argparse
from unittest import mock

import numpy as np

import fedcl.pipeline.training as training
from fedcl.config import FedCLConfig
from fedcl.data import NodeScaler
from fedcl.experiments._benchmark import cell_splits, named_cells, run_cell
from fedcl.experiments._methods import Method, fedcl_method
from fedcl.experiments._runner import one_torch_thread

NOISELESS = 1e6  # ε for which the calibrated noise multiplier is ~0.008: DP-SGD's clipping and loss, little noise
VARIANTS = {  # name: (ε, scaler: "own" or "public")
    "clear, own scaler": (float("inf"), "own"),
    "clear, public scaler": (float("inf"), "public"),
    "DP recipe ε=1e6, own scaler (not private)": (NOISELESS, "own"),
    "DP recipe ε=1e6, public scaler": (NOISELESS, "public"),
    "DP ε=8, public scaler (--dp-epsilon 8)": (8.0, "public"),
}


def scaler(kind: str):
    """training_scaler's stand-in: the same scaler whatever the run's privacy."""
    return lambda private=False, schema="nbaiot": NodeScaler(keep_missing=True,
                                                             public=schema if kind == "public" else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="../shared/data/nbaiot/fedmse-iid")
    parser.add_argument("--cell", default="natural")
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    (cell,) = named_cells([args.data], False, [args.cell])
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with one_torch_thread():
        for seed in range(args.seeds):
            config = FedCLConfig(data=cell.data, seed=seed)
            splits = cell_splits(cell, config, False)
            for name, (epsilon, kind) in VARIANTS.items():
                method = Method(name, "ablation", fedcl_method(dp_epsilon=epsilon, personalisation="off"))
                with mock.patch.object(training, "training_scaler", scaler(kind)):
                    row = run_cell(cell, method, config, splits)
                figures[name].append((row["auroc"], row["fpr_at_tpr99"]))
                print(f"seed {seed} | {name}: AUROC {row['auroc']:.4f}, FPR@TPR0.99 {row['fpr_at_tpr99']:.4f}",
                      flush=True)
    means = {name: np.mean(v, axis=0) for name, v in figures.items()}
    for name, (auroc, fpr) in means.items():
        print(f"{name}: AUROC {auroc:.4f}, FPR@TPR0.99 {fpr:.4f}")
    clear = means["clear, own scaler"][0]
    lost = [clear - means[name][0] for name in ("clear, public scaler", "DP recipe ε=1e6, own scaler (not private)",
                                                "DP recipe ε=1e6, public scaler", "DP ε=8, public scaler (--dp-epsilon 8)")]
    print(f"AUROC lost against the clear recipe: public scaler {lost[0]:.4f}; DP recipe without noise {lost[1]:.4f} "
          f"(own scaler), {lost[2]:.4f} (public); DP at ε=8 {lost[3]:.4f}")


if __name__ == "__main__":
    main()
