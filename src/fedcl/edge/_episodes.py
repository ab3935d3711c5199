"""Alarm episodes: runs of consecutive windowed alarms on one channel, one JSON-ready record each."""

from __future__ import annotations

import bisect
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd


def alert_episodes(result: pd.DataFrame, window: int, *, node: str, threshold: float, model: str) -> list[dict]:
    """One record per alarm episode of a scored stream, in order of its first packet (schema: docs/gateway.md).

    An episode is a maximal run of one channel's packets, consecutive among that channel's packets,
    whose windowed alarm (column ``alert_w{window}``) is set. The vote itself runs over the node's
    whole stream, as in the summary, so ``flagged`` (packets of the episode flagged on their own)
    tells a channel that alarms from one that only sits inside another channel's alarm.
    :class:`EpisodeBuilder` gives the same records from a stream scored frame by frame.

    Parameters
    ----------
    result : DataFrame
        :func:`fedcl.detect.detect`'s frame, indexed by packet number: ``score``, ``alert``,
        ``alert_w{window}``, and for captures ``timestamp``, ``src``, ``dst``. Without ``src``/``dst``
        (a feature file) the whole file is one channel, and ``src``, ``dst``, ``time``, ``end`` are None.
    window : int
    node, threshold, model :
        Copied into every record (``model``: content hash of the model or bundle that scored).

    Returns
    -------
    episodes : list of dict
    """
    builder = EpisodeBuilder(window, node=node, threshold=threshold, model=model)
    return builder.update(result) + builder.close()


class EpisodeBuilder:
    """The records of :func:`alert_episodes` from consecutive frames of one scored stream
    (:func:`fedcl.detect.detect_chunks`), released as soon as their order is known.

    Holds each channel's open episode (its last packet so far alarmed) and the closed episodes that start
    after an open one (records come out in order of their first packet), never the packets.

    Parameters
    ----------
    window : int
    node, threshold, model :
        As :func:`alert_episodes`.
    idle : float, optional
        Live capture: an open episode also ends once its channel has been silent this many seconds (the
        attack's last packet may be the channel's last): of capture time while packets come (a scorer
        behind the capture must not split episodes), of wall clock when a frame is empty (the interface
        is quiet and the capture drained).
    """

    def __init__(self, window: int, *, node: str, threshold: float, model: str, idle: float | None = None) -> None:
        self.window = window
        self.idle = idle
        self.node = node
        self.threshold = threshold
        self.model = model
        self._open: dict[tuple, dict] = {}  # (src, dst) -> record of the episode its last packet is in
        self._closed: list[dict] = []  # records not yet released

    def update(self, result: pd.DataFrame) -> list[dict]:
        """Take the next frame; return the episodes now known complete and earlier than any open one."""
        windowed = result[f"alert_w{self.window}"].to_numpy().astype(bool)
        if "src" in result and "dst" in result:
            channels = result.groupby(["src", "dst"], sort=False).indices  # (src, dst) -> positions, ascending
        else:
            channels = {(None, None): np.arange(len(result))}
        columns = (result["timestamp"].to_numpy() if "timestamp" in result else None,
                   result["score"].to_numpy(), result["alert"].to_numpy(), result.index.to_numpy())
        for key, positions in channels.items():
            alarmed, quiet = positions[windowed[positions]], positions[~windowed[positions]]
            records = [self._record(key, run, *columns) for run in _runs(alarmed, quiet)]
            before = self._open.pop(key, None)
            if before is not None and records and records[0]["first_packet"] == int(result.index[positions[0]]):
                records[0] = _join(before, records[0])  # the channel's alarm goes on across the frames
            elif before is not None:
                self._closed.append(before)
            if records and windowed[positions[-1]]:
                self._open[key] = records.pop()
            self._closed += records
        if self.idle is not None:
            now = result["timestamp"].max() if len(result) and "timestamp" in result else time.time()
            cutoff = now - self.idle
            silent = [key for key, e in self._open.items() if datetime.fromisoformat(e["end"]).timestamp() < cutoff]
            self._closed += [self._open.pop(key) for key in silent]
        return self._release(min((e["first_packet"] for e in self._open.values()), default=None))

    def close(self) -> list[dict]:
        """The episodes still held, open ones included (the stream has ended)."""
        self._closed += self._open.values()
        self._open = {}
        return self._release(None)

    def _release(self, limit: int | None) -> list[dict]:
        """Closed episodes that start before ``limit`` (all if None), in order of their first packet."""
        self._closed.sort(key=lambda e: e["first_packet"])
        n = len(self._closed) if limit is None else bisect.bisect_left(
            [e["first_packet"] for e in self._closed], limit)
        out, self._closed = self._closed[:n], self._closed[n:]
        return out

    def _record(self, key: tuple, run: np.ndarray, times: np.ndarray | None, scores: np.ndarray,
                flags: np.ndarray, packets: np.ndarray) -> dict:
        """The record of one run of a channel's alarmed positions in a frame's columns."""
        first, last = run[0], run[-1]
        return {
            "time": None if times is None else _iso(times[first]),
            "end": None if times is None else _iso(times[last]),
            "node": self.node,
            "src": key[0],
            "dst": key[1],
            "score": float(scores[run].max()),
            "threshold": float(self.threshold),
            "window": int(self.window),
            "packets": int(len(run)),
            "flagged": int(flags[run].sum()),
            "first_packet": int(packets[first]),
            "last_packet": int(packets[last]),
            "model": self.model,
        }


def _join(before: dict, after: dict) -> dict:
    """One episode from its part in an earlier frame and its part in the next."""
    return before | {
        "end": after["end"],
        "score": max(before["score"], after["score"]),
        "packets": before["packets"] + after["packets"],
        "flagged": before["flagged"] + after["flagged"],
        "last_packet": after["last_packet"],
    }


def _runs(alarmed: np.ndarray, quiet: np.ndarray) -> list[np.ndarray]:
    """Split one channel's alarmed positions (ascending) wherever a quiet position of the channel falls
    between two of them."""
    if not len(alarmed):
        return []
    breaks = np.searchsorted(quiet, alarmed)  # quiet positions before each alarmed one
    return np.split(alarmed, np.flatnonzero(np.diff(breaks)) + 1)


def _iso(timestamp: float) -> str:
    """ISO 8601 in UTC with microseconds, as Suricata's and ECS's ``timestamp`` fields."""
    return datetime.fromtimestamp(float(timestamp), tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
