"""Score traffic with a trained node detector: per-packet alerts, a majority vote over a window, alarm episodes.

The detector comes from a run directory (torch) or from a bundle (:mod:`fedcl.edge`: ONNX Runtime,
no torch); nothing here imports torch or flwr unless :func:`from_run` is called.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from fedcl.data import COLUMNS, leakage_guard, read_feature_csv
from fedcl.edge import majority_vote
from fedcl.errors import ConfigError


class Detector(Protocol):
    """What scoring needs of a detector: FedCLDetector, PersonalDetector and BundleDetector all have it."""

    threshold_: float

    def decision_function(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class NodeScorer:
    """One node's detector and what goes with it: the vote window, the leakage guard, the model's hash and the
    feature columns it reads.

    ``model`` is the hex SHA-256 of the run's model.pt, or the bundle's content hash; ``columns`` are
    N-BaIoT's 115 ``COLUMNS`` unless the run was trained with ``schema="auto"``.
    """

    detector: Detector
    node: str
    window: int
    leakage_guard: str
    model: str
    columns: tuple[str, ...] = COLUMNS


def from_run(run_dir: str | Path, node: str | None = None) -> NodeScorer:
    """The detector of ``node`` (the only node when None) in a trained run directory (imports torch).

    Raises
    ------
    ConfigError
        Not a trained run, or ``node`` is missing or not one of the run's nodes.
    """
    require_training_install("--model")
    from fedcl import pipeline
    from fedcl.edge import file_sha256
    from fedcl.rundir import MODEL_FILE, load_columns

    config = pipeline.load_run_config(run_dir)
    detectors = pipeline.load_detectors(run_dir)
    if node is None and len(detectors) != 1:
        raise ConfigError(f"the model has {len(detectors)} nodes; choose one with --node ({', '.join(detectors)})")
    node = node or next(iter(detectors))
    if node not in detectors:
        raise ConfigError(f"no node {node!r} in {run_dir} (nodes: {', '.join(detectors)})")
    return NodeScorer(detectors[node], node, pipeline.load_windows(run_dir).get(node, 1), config.leakage_guard,
                      file_sha256(Path(run_dir) / MODEL_FILE), load_columns(run_dir))


def require_training_install(what: str) -> None:
    """ConfigError, not a traceback, when ``what`` needs torch and this is an edge install without it."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise ConfigError(f"{what} needs fedcl's training install (torch is not installed here); "
                          "on a gateway, score with --bundle (docs/gateway.md)")


def from_bundle(bundle: str | Path, node: str | None = None) -> NodeScorer:
    """The detector in a bundle written by ``fedcl export`` (ONNX Runtime; no torch).

    Raises
    ------
    InputError
        Not a complete, unchanged bundle; or ``node`` is given and the bundle is another node's.
    """
    from fedcl.edge import load_bundle

    detector = load_bundle(bundle)
    if node is not None and node != detector.node:
        raise ConfigError(f"{bundle}: the bundle holds node {detector.node!r}, not {node!r}")
    return NodeScorer(detector, detector.node, detector.window, detector.leakage_guard, detector.content_hash,
                      tuple(detector.manifest["feature_names"]))


def read_traffic(path: str | Path, columns: tuple[str, ...] = COLUMNS) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows to score and what is known of each packet: a capture (features extracted here) or a CSV.

    Returns the (n, len(columns)) features and a frame with ``timestamp``, ``src``, ``dst`` and
    ``channel`` (src -> dst) for captures, or only a row number for feature files. ``columns`` are
    the ones the model reads: N-BaIoT's (the CSV's header names them in order), or a flow table's,
    read by name from the CSV's header.
    """
    path = Path(path)
    columns = tuple(columns)
    if path.suffix.lower() in (".pcap", ".pcapng", ".cap"):
        if columns != COLUMNS:
            raise ConfigError(f"{path}: a capture gives N-BaIoT's 115 features, but the model reads "
                              f"{len(columns)} columns of a feature table (--schema auto): score a CSV of them")
        from fedcl.traffic import FeatureExtractor, read_packets

        packets = list(read_packets(path))
        features = FeatureExtractor().extract(packets)
        src = [_ip(p.src_ip) for p in packets]
        dst = [_ip(p.dst_ip) for p in packets]
        info = pd.DataFrame({
            "timestamp": [p.timestamp for p in packets],
            "src": src,
            "dst": dst,
            "channel": [f"{s} -> {d}" for s, d in zip(src, dst, strict=True)],
        })
        return features, info
    features = read_feature_csv(path, None if columns == COLUMNS else columns)
    return features, pd.DataFrame(index=np.arange(len(features)))


def _ip(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else raw.hex(":")


def detect(detector: Detector, features: np.ndarray, info: pd.DataFrame, window: int,
           guard: str = "on") -> pd.DataFrame:
    """Per-row score, per-row alert and windowed alert, next to what is known of each row."""
    x = features if guard == "off" else leakage_guard(features, strict=guard == "strict")
    scores = detector.decision_function(x)
    alerts = (scores > detector.threshold_).astype(np.int64)
    out = info.copy()
    out["score"] = scores
    out["alert"] = alerts
    out[f"alert_w{window}"] = majority_vote(alerts, window)
    return out


def summarise_alerts(result: pd.DataFrame, window: int, top: int = 5) -> list[str]:
    """Short text summary: alert counts and rates, and for captures the channels that alert most."""
    n = len(result)
    windowed = result[f"alert_w{window}"]
    lines = [f"{n:,} packets; per-packet alerts {int(result['alert'].sum()):,} ({result['alert'].mean():.2%}); "
             f"window {window}: {int(windowed.sum()):,} ({windowed.mean():.2%})"]
    if "timestamp" in result and n > 1:
        minutes = max((result["timestamp"].iloc[-1] - result["timestamp"].iloc[0]) / 60, 1 / 60)
        lines.append(f"{minutes:.1f} min of traffic: {windowed.sum() / minutes:.1f} windowed alerts per minute")
        counts = result.loc[windowed == 1, "channel"].value_counts().head(top)
        lines += [f"  {count:6,d}  {channel}" for channel, count in counts.items()]
    return lines


def alert_lines(episodes: list[dict]) -> list[str]:
    """One JSON object per alarm episode (:func:`fedcl.edge.alert_episodes`), one per line (JSON lines)."""
    return [json.dumps(e, separators=(",", ":")) for e in episodes]
