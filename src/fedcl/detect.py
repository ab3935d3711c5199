"""Score traffic with a trained node detector: per-packet alerts and a majority vote over a window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.data import leakage_guard, read_feature_csv
from fedcl.model import FedCLDetector, majority_vote


def read_traffic(path: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows to score and what is known of each packet: a capture (features extracted here) or a CSV.

    Returns the (n, 115) features and a frame with ``timestamp``, ``channel`` (src → dst) for
    captures, or only a row number for feature files.
    """
    path = Path(path)
    if path.suffix.lower() in (".pcap", ".pcapng", ".cap"):
        from fedcl.traffic import FeatureExtractor, read_packets

        packets = list(read_packets(path))
        features = FeatureExtractor().extract(packets)
        info = pd.DataFrame({
            "timestamp": [p.timestamp for p in packets],
            "channel": [f"{_ip(p.src_ip)} -> {_ip(p.dst_ip)}" for p in packets],
        })
        return features, info
    features = read_feature_csv(path)
    return features, pd.DataFrame(index=np.arange(len(features)))


def _ip(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else raw.hex(":")


def detect(detector: FedCLDetector, features: np.ndarray, info: pd.DataFrame, window: int,
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
