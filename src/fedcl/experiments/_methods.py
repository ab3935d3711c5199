"""Every method of the comparison, as a function from node splits to fitted per-node detectors.

All methods see the same splits (same leakage guard, same benign train / validation / test rows)
and put their thresholds on benign validation rows. Supervised methods also train on a labelled
slice of the attack rows, which is then removed from their test rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.data import NodeSplit
from fedcl.federated import run_federation
from fedcl.pipeline import fit_detectors, fit_node_detectors, own_encoder, scaled_training_rows, trained_encoder

Detectors = dict[str, object]


@dataclass(frozen=True)
class Method:
    """A row of the comparison table.

    ``fit(splits, config)`` returns per-node detectors and the splits to test them on (the same
    splits, except for supervised methods, whose labelled training attacks are taken out).
    """

    name: str
    kind: str  # "ours", "ablation", "unsupervised", "centralised", "supervised"
    fit: Callable[[list[NodeSplit], FedCLConfig], tuple[Detectors, list[NodeSplit]]] = field(repr=False)
    # Federated methods also take ``trainers=`` (names): the other nodes join after training, with
    # the federation's model and their own scaler, references and threshold (unseen devices); the
    # detectors returned then include theirs.
    federated: bool = False


def fedcl_method(**overrides) -> Callable:
    def fit(splits, config, trainers=None):
        return fit_detectors(splits, config.updated(**overrides), trainers=trainers)[0], splits
    return fit


def _local_only(splits, config):
    """Our encoder trained by each node alone: no federation at all."""
    local = config.updated(personalisation="off", acceptance_margin=0.0)  # one node: no other to accept from
    return {s.name: fit_node_detectors(own_encoder(s, config), [s], local)[s.name] for s in splits}, splits


def _centralised_ours(splits, config):
    """Our encoder trained on every node's rows pooled in one place (breaks privacy: a reference)."""
    pooled = torch.cat([scaled_training_rows(s) for s in splits])
    config = config.updated(personalisation="off", acceptance_margin=0.0)  # the pooled encoder alone, for reference
    result = run_federation({"pooled": pooled}, config)
    encoder = trained_encoder(config, result.arrays, splits[0].train.shape[1])
    return fit_node_detectors(encoder, splits, config), splits


def per_node_method(make: Callable[[FedCLConfig], object]) -> Callable:
    def fit(splits, config):
        return {s.name: make(config).fit(s.train, X_val=s.val) for s in splits}, splits
    return fit


def pooled_method(make: Callable[[FedCLConfig], object]) -> Callable:
    def fit(splits, config):
        shared = make(config).fit(np.vstack([s.train for s in splits]), X_val=np.vstack([s.val for s in splits]))
        return {s.name: shared for s in splits}, splits
    return fit


def federated_autoencoder_method(splits, config, trainers=None):
    # Five epochs' worth of rounds per fedcl round: the per-node autoencoder trains up to 100 epochs,
    # and at 20 one-epoch rounds the federated one had a fifth of that budget.
    from fedcl.baselines import train_federated_autoencoder

    detectors = train_federated_autoencoder({s.name: s.train for s in splits}, {s.name: s.val for s in splits},
                                            rounds=5 * config.rounds, seed=config.seed, fpr_target=config.fpr_target,
                                            trainers=trainers)
    return detectors, splits


def unsupervised_methods() -> list[Method]:
    from fedcl.baselines import (AutoencoderDetector, IsolationForestDetector, KNNDetector, LOFDetector,
                                 OCSVMDetector)

    return [
        Method("fedcl (ours)", "ours", fedcl_method(), federated=True),
        Method("autoencoder per node (Meidan et al.)", "unsupervised",
               per_node_method(lambda c: AutoencoderDetector(random_state=c.seed, fpr_target=c.fpr_target))),
        Method("federated autoencoder, FedAvg", "unsupervised", federated_autoencoder_method, federated=True),
        Method("our encoder, local only", "unsupervised", _local_only),
        Method("Isolation Forest per node", "unsupervised",
               per_node_method(lambda c: IsolationForestDetector(random_state=c.seed, fpr_target=c.fpr_target))),
        Method("LOF per node", "unsupervised", per_node_method(lambda c: LOFDetector(fpr_target=c.fpr_target))),
        Method("one-class SVM per node", "unsupervised",
               per_node_method(lambda c: OCSVMDetector(random_state=c.seed, fpr_target=c.fpr_target))),
        Method("k-NN per node", "unsupervised", per_node_method(lambda c: KNNDetector(fpr_target=c.fpr_target))),
        Method("our encoder, centralised (raw data pooled!)", "centralised", _centralised_ours),
        Method("k-NN, centralised (raw data pooled!)", "centralised",
               pooled_method(lambda c: KNNDetector(fpr_target=c.fpr_target))),
        Method("autoencoder, centralised (raw data pooled!)", "centralised",
               pooled_method(lambda c: AutoencoderDetector(random_state=c.seed, fpr_target=c.fpr_target))),
    ]


def ablation_methods() -> list[Method]:
    return [
        Method("fedcl (ours)", "ours", fedcl_method()),
        Method("plain dynamic weights (reports trusted)", "ablation", fedcl_method(aggregation="dynamic")),
        Method("FedAvg weights instead of dynamic", "ablation", fedcl_method(aggregation="fedavg")),
        Method("without personalisation (federation's encoder only)", "ablation",
               fedcl_method(personalisation="off")),
        Method("without consistency loss (λ = 0)", "ablation", fedcl_method(consistency_weight=0.0)),
        Method("without per-node normalisation", "ablation", fedcl_method(node_normalisation=False)),
        Method("without federation (local only)", "ablation", _local_only),
    ]


def shrink(splits: list[NodeSplit], seed: int, nodes: int = 3, train: int = 300, held_out: int = 100,
           attacks: int = 200) -> list[NodeSplit]:
    """A small slice for --quick runs: a few nodes, a few hundred rows each (seeded)."""
    rng = np.random.default_rng(seed)

    def take(x, n):
        return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]

    out = []
    for s in splits[:nodes]:
        keep = np.sort(rng.choice(len(s.attack), min(attacks, len(s.attack)), replace=False))
        out.append(replace(s, train=take(s.train, train), val=take(s.val, held_out),
                           test_benign=take(s.test_benign, held_out), attack=s.attack[keep],
                           attack_family=s.attack_family[keep]))
    return out
