"""Federated training on a data set: splits, the federation, each node's detector, the saved model."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path

import torch

from fedcl.config import FedCLConfig, save_config
from fedcl.data import ROW_SETS, NodeData, NodeScaler, NodeSplit, leakage_guard, read_dataset, split_node
from fedcl.errors import ConfigError, InputError
from fedcl.federated import FederationResult, run_federation
from fedcl.federated.params import set_arrays
from fedcl.model import ENCODERS, FedCLDetector, choose_window, encoder_for
from fedcl.rundir import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, append_history, prepare_run_dir


def split_nodes(nodes: list[NodeData], config: FedCLConfig) -> list[NodeSplit]:
    """Split each node's benign rows (train/val/test) and apply the leakage guard."""
    guard = config.leakage_guard
    splits = []
    for node in nodes:
        s = split_node(node, config.val_fraction, config.test_fraction, config.seed)
        if guard != "off":
            s = replace(s, **{k: leakage_guard(getattr(s, k), strict=guard == "strict") for k in ROW_SETS})
        splits.append(s)
    return splits


def load_splits(config: FedCLConfig) -> list[NodeSplit]:
    """Read every node of ``config.data`` and split it (see :func:`split_nodes`)."""
    if not config.data:
        raise ConfigError("no data path given (--data)")
    return split_nodes(read_dataset(config.data, config.layout), config)


def check_trainable(splits: list[NodeSplit], config: FedCLConfig) -> None:
    """Fail before training, in one line, on data a run cannot use with this config."""
    if config.encoder not in ENCODERS:
        raise ConfigError(f"unknown encoder {config.encoder!r}; choose one of {', '.join(ENCODERS)}")
    for s in splits:
        if len(s.train) < 2:
            raise InputError(f"node {s.name!r} has {len(s.train)} benign training row(s); "
                             "contrastive training needs at least 2")
        if len(s.val) == 0:
            raise InputError(f"node {s.name!r} has no benign validation rows to set its threshold on")


def scaled_training_rows(split: NodeSplit) -> torch.Tensor:
    """A node's benign training rows scaled with its own statistics (NaN = missing): what its local training sees."""
    return torch.from_numpy(NodeScaler(keep_missing=True).fit_transform(split.train))


def make_detector(encoder: torch.nn.Module, config: FedCLConfig) -> FedCLDetector:
    """An unfitted node detector around the federation's encoder, as ``config`` describes it."""
    return FedCLDetector(encoder, normalise=config.node_normalisation, n_neighbors=config.n_neighbors,
                         n_references=config.n_references, fpr_target=config.fpr_target,
                         random_state=config.seed)


def fit_node_detectors(encoder: torch.nn.Module, splits: list[NodeSplit], config: FedCLConfig,
                       ) -> dict[str, FedCLDetector]:
    """Each node's detector on its own rows; thresholds from its benign validation rows only."""
    return {s.name: make_detector(encoder, config).fit(s.train, X_val=s.val) for s in splits}


def trained_encoder(config: FedCLConfig, arrays: list, n_features: int) -> torch.nn.Module:
    """The encoder ``config`` describes, holding the parameters ``arrays``."""
    encoder = encoder_for(config, n_features)
    set_arrays(encoder, arrays)
    return encoder


def fit_detectors(splits: list[NodeSplit], config: FedCLConfig, on_round: Callable[[dict], None] | None = None,
                  trainers: Collection[str] | None = None) -> tuple[dict[str, FedCLDetector], FederationResult]:
    """Federated training, then each node's detector on its own rows (threshold from its validation rows).

    ``trainers`` (names, default all) take part in training; the other nodes join afterwards, with
    the federation's encoder and their own scaler, references and threshold (unseen devices).
    """
    training = [s for s in splits if trainers is None or s.name in trainers]
    result = run_federation({s.name: scaled_training_rows(s) for s in training}, config, on_round=on_round)
    encoder = trained_encoder(config, result.arrays, splits[0].train.shape[1])
    return fit_node_detectors(encoder, splits, config), result


def train(config: FedCLConfig, out_dir: str | Path, on_round: Callable[[dict], None] | None = None,
          splits: list[NodeSplit] | None = None) -> Path:
    """Federated training on ``config.data``; writes config, per-round history and the model.

    Each node scales its own training rows with its own statistics; only model updates and a few
    embedding statistics cross the federation (see :func:`fedcl.federated.run_federation`).
    ``splits`` (from :func:`load_splits`) saves reading the data again when the caller has it.
    """
    out = prepare_run_dir(out_dir)
    splits = load_splits(config) if splits is None else splits
    check_trainable(splits, config)
    save_config(config.updated(data=str(Path(config.data).resolve())), out / CONFIG_FILE)  # valid from anywhere
    (out / HISTORY_FILE).write_text("")

    def record(entry: dict) -> None:
        append_history(out, entry)
        if on_round is not None:
            on_round(entry)

    detectors, result = fit_detectors(splits, config, on_round=record)
    torch.save({
        "windows": {s.name: choose_window(detectors[s.name].predict(s.val)) for s in splits},
        "config": config.to_dict(),
        "n_features": splits[0].train.shape[1],
        "encoder": next(iter(detectors.values())).encoder.state_dict(),
        "reference": torch.as_tensor(result.reference, dtype=torch.float32),
        "nodes": {name: d.state_dict() for name, d in detectors.items()},
    }, out / MODEL_FILE)
    return out
