"""Can a node choose how long its own encoder trains from benign validation rows? A design study.

    .venv/bin/python benchmarks/own_training_length.py DATA [--cell "natural, 250 train rows"] [--rounds 40] [--epochs 2]

Trains each node's own encoder (the personal view) of one benchmark cell on the development seed for
``rounds`` × ``epochs`` local epochs and, every other round, prints the InfoNCE loss of its benign
validation rows (augmented as in training, fixed draws) and the detection AUROC of that encoder's
detector on the node's held-out rows. If the validation loss is a usable signal, its lowest round should
be near the best AUROC's. Last line: over the nodes, the AUROC at the lowest-validation-loss round, at
the first round and the best reached (the last needs attack labels, so it is not a method).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fedcl.config import FedCLConfig
from fedcl.data import training_scaler
from fedcl.experiments._benchmark import cells
from fedcl.federated import run_federation
from fedcl.federated.local import batch_starts, normalised_views
from fedcl.model import EmbeddingNormaliser, InfoNCELoss
from fedcl.pipeline import make_detector, trained_encoder


def validation_loss(encoder: torch.nn.Module, x: torch.Tensor, config: FedCLConfig, repeats: int = 4) -> float:
    """Mean InfoNCE of the node's scaled validation rows, in training's batches, with fixed augmentations."""
    generator = torch.Generator().manual_seed(123)
    loss, normaliser = InfoNCELoss(config.temperature), EmbeddingNormaliser(config.embedding_dim)
    batch = min(config.batch_size, len(x))
    losses = []
    encoder.eval()
    with torch.no_grad():
        for _ in range(repeats):
            order = torch.randperm(len(x), generator=generator)
            for start in batch_starts(len(x), batch):
                views = normalised_views(encoder, x[order[start:start + batch]], normaliser, config, generator)
                losses.append(loss(*views).item())
    return float(np.mean(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--cell", default="natural, 250 train rows")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2, help="local epochs a round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = FedCLConfig(data=args.data, seed=0)
    cell = next((c for c in cells(args.data, False) if c.name == args.cell), None)
    if cell is None:
        parser.error(f"no cell {args.cell!r}; cells: {', '.join(c.name for c in cells(args.data, False))}")
    recipe = config.updated(data="", aggregation="fedavg", personalisation="off", rounds=args.rounds,
                            local_epochs=args.epochs, min_rows_per_round=0)
    at_best_loss, first, best = [], [], []
    for split in cell.make_splits(config):
        scaler = training_scaler().fit(split.train)
        x_val = torch.from_numpy(scaler.transform(split.val))
        weights = []  # the encoder after each round: θ broadcast + the node's Δθ

        def keep(_round, theta, _names, updates):
            weights.append([t + d for t, d in zip(theta, updates[0].delta)])

        run_federation({split.name: torch.from_numpy(scaler.transform(split.train))}, recipe, on_updates=keep)
        y = np.r_[np.zeros(len(split.test_benign)), np.ones(len(split.attack))]
        trace = []
        for round_, arrays in enumerate(weights, 1):
            if round_ % 2 and round_ != 1:
                continue
            encoder = trained_encoder(recipe, arrays, split.train.shape[1])
            detector = make_detector(encoder, recipe).fit(split.train, X_val=split.val)
            auroc = roc_auc_score(y, np.r_[detector.decision_function(split.test_benign),
                                           detector.decision_function(split.attack)])
            trace.append((round_, validation_loss(encoder, x_val, recipe), auroc))
        lowest = min(trace, key=lambda t: t[1])
        at_best_loss.append(lowest[2])
        first.append(trace[0][2])
        best.append(max(t[2] for t in trace))
        print(f"{split.name} ({len(split.train)} rows): " + " ".join(f"{r}:{v:.3f}/{a:.4f}" for r, v, a in trace)
              + f" | lowest validation loss at round {lowest[0]}", flush=True)
    print(f"{args.cell}, {args.rounds} rounds x {args.epochs} epochs, mean node AUROC: at the lowest validation "
          f"loss {np.mean(at_best_loss):.4f}, after round 1 {np.mean(first):.4f}, best reached {np.mean(best):.4f}")


if __name__ == "__main__":
    main()
