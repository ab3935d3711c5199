"""End-to-end steps on a run directory: train (federated) then evaluate (held-out metrics + report)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fedcl.config import FedCLConfig, load_config, save_config
from fedcl.data import NodeData, NodeScaler, NodeSplit, leakage_guard, read_dataset, split_node
from fedcl.detect import choose_window
from fedcl.eval.metrics import detection_metrics
from fedcl.federated import FederationResult, run_federation
from fedcl.federated._params import set_arrays
from fedcl.model import FedCLDetector, encoder_for
from fedcl.rundir import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, SCORES_FILE

ROW_SETS = ("train", "val", "test_benign", "attack")  # every row array of a NodeSplit


def _guard(x: np.ndarray, mode: str) -> np.ndarray:
    return x if mode == "off" else leakage_guard(x, strict=mode == "strict")


def split_nodes(nodes: list[NodeData], config: FedCLConfig) -> list[NodeSplit]:
    """Split each node's benign rows (train/val/test) and apply the leakage guard."""
    splits = []
    for node in nodes:
        s = split_node(node, config.val_fraction, config.test_fraction, config.seed)
        splits.append(replace(s, **{k: _guard(getattr(s, k), config.leakage_guard) for k in ROW_SETS}))
    return splits


def load_splits(config: FedCLConfig) -> list[NodeSplit]:
    """Read every node of ``config.data`` and split it (see :func:`split_nodes`)."""
    if not config.data:
        raise ValueError("no data path given (--data)")
    return split_nodes(read_dataset(config.data, config.layout), config)


def scaled_training_rows(split: NodeSplit) -> torch.Tensor:
    """A node's benign training rows scaled with its own statistics (NaN = missing): what its local training sees."""
    return torch.from_numpy(NodeScaler(keep_missing=True).fit_transform(split.train))


def _detector(encoder: torch.nn.Module, config: FedCLConfig) -> FedCLDetector:
    return FedCLDetector(encoder, normalise=config.node_normalisation, n_neighbors=config.n_neighbors,
                         fpr_target=config.fpr_target, random_state=config.seed)


def fit_node_detectors(encoder: torch.nn.Module, splits: list[NodeSplit], config: FedCLConfig,
                       ) -> dict[str, FedCLDetector]:
    """Each node's detector on its own rows; thresholds from its benign validation rows only."""
    return {s.name: _detector(encoder, config).fit(s.train, X_val=s.val) for s in splits}


def trained_encoder(config: FedCLConfig, arrays: list[np.ndarray], n_features: int) -> torch.nn.Module:
    encoder = encoder_for(config, n_features)
    set_arrays(encoder, arrays)
    return encoder


def fit_detectors(splits: list[NodeSplit], config: FedCLConfig, on_round: Callable[[dict], None] | None = None,
                  ) -> tuple[dict[str, FedCLDetector], FederationResult]:
    """Federated training, then each node's detector on its own rows (threshold from its validation rows)."""
    result = run_federation({s.name: scaled_training_rows(s) for s in splits}, config, on_round=on_round)
    encoder = trained_encoder(config, result.arrays, splits[0].train.shape[1])
    return fit_node_detectors(encoder, splits, config), result


def train(config: FedCLConfig, out_dir: str | Path, on_round: Callable[[dict], None] | None = None,
          splits: list[NodeSplit] | None = None) -> Path:
    """Federated training on ``config.data``; writes config, per-round history and the model.

    Each node scales its own training rows with its own statistics; only model updates and a few
    embedding statistics cross the federation (see :func:`fedcl.federated.run_federation`).
    ``splits`` (from :func:`load_splits`) saves reading the data again when the caller has it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / CONFIG_FILE)
    splits = load_splits(config) if splits is None else splits

    history_path = out / HISTORY_FILE
    history_path.write_text("")

    def record(entry: dict) -> None:
        # Appended as it happens, so a crash keeps every finished round.
        with history_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
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


def load_run_config(run_dir: str | Path) -> FedCLConfig:
    run = Path(run_dir)
    if not (run / MODEL_FILE).is_file() or not (run / CONFIG_FILE).is_file():
        raise ValueError(f"{run}: not a trained run directory (no {MODEL_FILE} or {CONFIG_FILE}); run `fedcl train` first")
    return load_config(run / CONFIG_FILE)


def load_detectors(run_dir: str | Path, splits: list[NodeSplit] | None = None) -> dict[str, FedCLDetector]:
    """The per-node detectors of a trained run (loaded with ``weights_only=True``).

    A run trained over Flower holds only the global encoder and g (the server never sees node
    data); its detectors are fitted here, each on its own node's training and validation rows, so
    ``splits`` is needed then.
    """
    config = load_run_config(run_dir)
    saved = torch.load(Path(run_dir) / MODEL_FILE, weights_only=True)
    encoder = encoder_for(config, saved["n_features"])
    encoder.load_state_dict(saved["encoder"])
    if saved["nodes"]:
        return {name: _detector(encoder, config).load_state_dict(state) for name, state in saved["nodes"].items()}
    if splits is None:
        raise ValueError(f"{run_dir}: the run has no per-node detectors (a Flower run); give --data to fit them")
    return fit_node_detectors(encoder, splits, config)


def load_windows(run_dir: str | Path) -> dict[str, int]:
    """Each node's vote window, chosen on its benign validation rows at training (empty for Flower runs)."""
    return dict(torch.load(Path(run_dir) / MODEL_FILE, weights_only=True).get("windows", {}))


def score_nodes(detectors: dict[str, FedCLDetector], splits: list[NodeSplit]) -> pd.DataFrame:
    """One row per held-out test row: node, label (1 = attack), family, score, prediction."""
    frames = []
    for s in splits:
        if s.name not in detectors:
            raise ValueError(f"node {s.name!r} is in the data but not in the trained model")
        det = detectors[s.name]
        x = np.vstack([s.test_benign, s.attack])
        scores = det.decision_function(x) if len(x) else np.empty(0)
        frames.append(pd.DataFrame({
            "node": s.name,
            "label": np.r_[np.zeros(len(s.test_benign), int), np.ones(len(s.attack), int)],
            "family": np.r_[np.full(len(s.test_benign), "benign", dtype=object), s.attack_family.astype(object)],
            "score": scores,
            "prediction": (scores > det.threshold_).astype(int),
        }))
    return pd.concat(frames, ignore_index=True)


def summarise(scores: pd.DataFrame) -> dict:
    """metrics.json: pooled, per node, and per attack family (each family against all benign test rows)."""
    def metrics(df: pd.DataFrame) -> dict:
        return detection_metrics(df["label"].to_numpy(), df["score"].to_numpy(), df["prediction"].to_numpy())

    benign = scores[scores["label"] == 0]
    families = sorted(set(scores["family"]) - {"benign"})
    return {
        "pooled": metrics(scores),
        "nodes": {name: metrics(df) for name, df in scores.groupby("node", sort=False)},
        "families": {f: metrics(pd.concat([benign, scores[scores["family"] == f]])) for f in families},
        "counts": {"benign_test": int(len(benign)), "attack": int((scores["label"] == 1).sum())},
    }


def evaluate(run_dir: str | Path, data: str | None = None) -> dict:
    """Score each node's held-out benign test and attack rows; write scores, metrics and the report."""
    from fedcl.eval.report import write_report  # matplotlib only when a report is written

    run = Path(run_dir)
    config = load_run_config(run).updated(data=data)
    splits = load_splits(config)
    scores = score_nodes(load_detectors(run, splits), splits)
    scores.to_csv(run / SCORES_FILE, index=False)
    summary = summarise(scores)
    (run / METRICS_FILE).write_text(json.dumps(summary, indent=2))
    write_report(run, config, summary)
    return summary
