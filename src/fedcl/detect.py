"""Score traffic with a trained node detector: per-packet alerts, a majority vote over a window, alarm episodes.

The detector comes from a run directory (torch) or from a bundle (:mod:`fedcl.edge`: ONNX Runtime,
no torch); nothing here imports torch or flwr unless :func:`from_run` is called. ``fedcl detect`` streams:
:func:`read_traffic_chunks`, :func:`detect_chunks` and :class:`AlertSummary` give, chunk by chunk, the bytes
:func:`read_traffic`, :func:`detect` and :func:`summarise_alerts` give on the whole input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from fedcl.data import COLUMNS, DataError, leakage_guard, read_feature_csv
from fedcl.edge import majority_vote
from fedcl.errors import ConfigError, InputError


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


#: Packets per chunk when a capture is streamed: a multiple of FeatureExtractor's pass, so every row is
#: computed as in one pass over the whole capture (~30 MB of features per chunk).
CHUNK_PACKETS = 32_768


def read_traffic(path: str | Path, columns: tuple[str, ...] = COLUMNS) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows to score and what is known of each packet: a capture (features extracted here) or a CSV.

    Returns the (n, len(columns)) features and a frame with ``timestamp``, ``src``, ``dst`` and
    ``channel`` (src -> dst) for captures, or only a row number for feature files. ``columns`` are
    the ones the model reads: N-BaIoT's (the CSV's header names them in order), or a flow table's,
    read by name from the CSV's header. Holds the whole input: :func:`read_traffic_chunks` streams it.
    """
    path = Path(path)
    if _is_capture(path, columns):
        from fedcl.traffic import FeatureExtractor, read_packets

        packets = list(read_packets(path))
        return FeatureExtractor().extract(packets), _packet_info(packets, 0)
    features = read_feature_csv(path, None if tuple(columns) == COLUMNS else tuple(columns))
    return features, pd.DataFrame(index=np.arange(len(features)))


def read_traffic_chunks(path: str | Path, columns: tuple[str, ...] = COLUMNS,
                        chunk: int | None = None) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """:func:`read_traffic` in consecutive chunks of at most ``chunk`` rows (default :data:`CHUNK_PACKETS`),
    the same rows in bounded memory.

    A capture is read and extracted chunk by chunk; each info frame is indexed by packet number. A feature
    table is read whole (its reader parses the file at once) and sliced. At least one chunk is yielded,
    empty for an empty capture. On a damaged capture, the chunk of the packets read before the damage
    comes first, then the :class:`fedcl.data.DataError`.
    """
    path, chunk = Path(path), chunk or CHUNK_PACKETS
    if not _is_capture(path, columns):
        features, info = read_traffic(path, columns)
        for lo in range(0, max(len(features), 1), chunk):
            yield features[lo : lo + chunk], info.iloc[lo : lo + chunk]
        return
    from fedcl.traffic import FeatureExtractor, pass_aligned_chunks, read_packets

    extractor = FeatureExtractor()
    start = 0
    for packets in pass_aligned_chunks(read_packets(path), chunk, extractor):
        yield extractor.extract(packets), _packet_info(packets, start)
        start += len(packets)


def _is_capture(path: Path, columns: tuple[str, ...]) -> bool:
    """Whether ``path`` is a capture by its name; a capture only gives the N-BaIoT columns."""
    if path.suffix.lower() not in (".pcap", ".pcapng", ".cap"):
        return False
    if tuple(columns) != COLUMNS:
        raise ConfigError(f"{path}: a capture gives N-BaIoT's 115 features, but the model reads "
                          f"{len(columns)} columns of a feature table (--schema auto): score a CSV of them")
    return True


def _packet_info(packets: list, start: int) -> pd.DataFrame:
    """Timestamp, src, dst and channel of each packet, indexed by packet number from ``start``."""
    src = [_ip(p.src_ip) for p in packets]
    dst = [_ip(p.dst_ip) for p in packets]
    return pd.DataFrame({
        "timestamp": [p.timestamp for p in packets],
        "src": src,
        "dst": dst,
        "channel": [f"{s} -> {d}" for s, d in zip(src, dst, strict=True)],
    }, index=pd.RangeIndex(start, start + len(packets)))


@functools.lru_cache(maxsize=1 << 16)  # a capture has few addresses; formatting each packet's took ~20 % of detect
def _ip(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else raw.hex(":")


def detect(detector: Detector, features: np.ndarray, info: pd.DataFrame, window: int,
           guard: str = "on") -> pd.DataFrame:
    """Per-row score, per-row alert and windowed alert, next to what is known of each row."""
    return _score(detector, features, info, window, guard, np.zeros(0, dtype=np.int64))[0]


# Rows per detector call are a multiple of this: FedCLDetector and BundleDetector score in passes of 2,048
# rows, and a row's score may depend on the pass it shares (BLAS blocking), so passes start where one call's do.
_SCORE_PASS = 2048


def detect_chunks(detector: Detector, chunks: Iterable[tuple[np.ndarray, pd.DataFrame]], window: int,
                  guard: str = "on") -> Iterator[pd.DataFrame]:
    """:func:`detect` over consecutive chunks of one stream (:func:`read_traffic_chunks`), frame by frame.

    The frames hold the rows, scores and votes :func:`detect` gives on the whole stream: the vote carries
    the last ``window`` − 1 flags across frames. ``chunks`` must not be empty (:func:`read_traffic_chunks`
    yields an empty chunk for an empty capture), so there is at least one frame. On an
    :class:`~fedcl.errors.InputError` from ``chunks``, the rows before it are yielded, then it is raised.
    """
    tail = np.zeros(0, dtype=np.int64)  # the last window − 1 flags so far
    held: list[tuple[np.ndarray, pd.DataFrame]] = []  # rows not yet scored, fewer than _SCORE_PASS at a time
    chunks = iter(chunks)
    while True:
        try:
            held.append(next(chunks))
        except StopIteration:
            break
        except InputError:  # damaged input: score the rows read before the damage, then raise
            if held:
                yield _score(detector, *_concat(held), window, guard, tail)[0]
            raise
        n = sum(len(f) for f, _ in held)
        if n >= _SCORE_PASS:
            features, info = _concat(held)
            cut = n - n % _SCORE_PASS
            held = [(features[cut:], info.iloc[cut:])] if cut < n else []
            frame, tail = _score(detector, features[:cut], info.iloc[:cut], window, guard, tail)
            yield frame
    if held:
        yield _score(detector, *_concat(held), window, guard, tail)[0]


def live_chunks(detector: Detector, batches: Iterable[list], window: int, guard: str = "on") -> Iterator[pd.DataFrame]:
    """:func:`detect_chunks` for live capture: one frame per batch of decoded packets
    (:meth:`fedcl.traffic.LiveCapture.batches`), the extractor's state and the vote carried across
    batches; an empty batch (a quiet interface) gives an empty frame, so silent episodes still end."""
    from fedcl.traffic import FeatureExtractor

    extractor, start = FeatureExtractor(), 0
    tail = np.zeros(0, dtype=np.int64)  # the last window − 1 flags so far
    for packets in batches:
        info = _packet_info(packets, start)
        if packets:
            frame, tail = _score(detector, extractor.extract(packets), info, window, guard, tail)
        else:
            frame = info.assign(score=np.zeros(0), alert=np.zeros(0, np.int64), **{f"alert_w{window}": tail[:0]})
        start += len(packets)
        yield frame


def _concat(parts: list[tuple[np.ndarray, pd.DataFrame]]) -> tuple[np.ndarray, pd.DataFrame]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([f for f, _ in parts]), pd.concat([i for _, i in parts])


def _score(detector: Detector, features: np.ndarray, info: pd.DataFrame, window: int, guard: str,
           tail: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One frame of :func:`detect_chunks`, and the flags its successor's vote needs."""
    x = features if guard == "off" else leakage_guard(features, strict=guard == "strict")
    scores = detector.decision_function(x)
    alerts = (scores > detector.threshold_).astype(np.int64)
    flags = np.concatenate([tail, alerts])
    out = info.copy()
    out["score"] = scores
    out["alert"] = alerts
    out[f"alert_w{window}"] = majority_vote(flags, window)[len(tail):]
    return out, flags[max(len(flags) - (window - 1), 0):]


class AlertSummary:
    """The summary of :func:`summarise_alerts`, kept up to date frame by frame in constant memory
    (one count per alarmed channel)."""

    def __init__(self, window: int, top: int = 5) -> None:
        self.window = window
        self.top = top
        self.n = self.alerts = self.windowed = 0
        self.first_time = self.last_time = None
        self.channels: dict[str, int] = {}  # windowed alarms per channel, in order of first alarm

    def update(self, result: pd.DataFrame) -> AlertSummary:
        """Count the rows of the next frame of :func:`detect_chunks`."""
        windowed = result[f"alert_w{self.window}"].to_numpy()
        self.n += len(result)
        self.alerts += int(result["alert"].sum())
        self.windowed += int(windowed.sum())
        if "timestamp" in result and len(result):
            if self.first_time is None:
                self.first_time = result["timestamp"].iloc[0]
            self.last_time = result["timestamp"].iloc[-1]
            codes, names = pd.factorize(result["channel"].to_numpy(dtype=object)[windowed == 1])  # first seen first
            for name, count in zip(names, np.bincount(codes, minlength=len(names)), strict=True):
                self.channels[name] = self.channels.get(name, 0) + int(count)
        return self

    def lines(self) -> list[str]:
        """Alert counts and rates, and for captures the channels that alert most (the most first, ties in
        order of first alarm)."""
        n, windowed = self.n, self.windowed
        rate = (lambda k: k / n) if n else (lambda k: float("nan"))
        lines = [f"{n:,} packets; per-packet alerts {self.alerts:,} ({rate(self.alerts):.2%}); "
                 f"window {self.window}: {windowed:,} ({rate(windowed):.2%})"]
        if 0 < n <= self.window // 2:  # a windowed alarm needs more flagged packets than there are
            lines.append(f"window {self.window} needs more than {self.window // 2:,} flagged packets to alarm, and "
                         f"{n:,} were scored: a shorter --window, or a longer capture")
        if self.first_time is not None and n > 1:
            minutes = max((self.last_time - self.first_time) / 60, 1 / 60)
            lines.append(f"{minutes:.1f} min of traffic: {windowed / minutes:.1f} windowed alerts per minute")
            counts = sorted(self.channels.items(), key=lambda item: -item[1])[: self.top]
            lines += [f"  {count:6,d}  {channel}" for channel, count in counts]
        return lines


def summarise_alerts(result: pd.DataFrame, window: int, top: int = 5) -> list[str]:
    """Short text summary: alert counts and rates, and for captures the channels that alert most."""
    return AlertSummary(window, top).update(result).lines()


def alert_lines(episodes: list[dict]) -> list[str]:
    """One JSON object per alarm episode (:func:`fedcl.edge.alert_episodes`), one per line (JSON lines)."""
    return [json.dumps(e, separators=(",", ":")) for e in episodes]
