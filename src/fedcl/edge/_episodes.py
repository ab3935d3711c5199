"""Alarm episodes: runs of consecutive windowed alarms on one channel, one JSON-ready record each."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd


def alert_episodes(result: pd.DataFrame, window: int, *, node: str, threshold: float, model: str) -> list[dict]:
    """One record per alarm episode of a scored stream, in order of its first packet (schema: docs/gateway.md).

    An episode is a maximal run of one channel's packets, consecutive among that channel's packets,
    whose windowed alarm (column ``alert_w{window}``) is set. The vote itself runs over the node's
    whole stream, as in the summary, so ``flagged`` (packets of the episode flagged on their own)
    tells a channel that alarms from one that only sits inside another channel's alarm.

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
    windowed = result[f"alert_w{window}"].to_numpy().astype(bool)
    scores, flags = result["score"].to_numpy(), result["alert"].to_numpy()
    packets = result.index.to_numpy()
    times = result["timestamp"].to_numpy() if "timestamp" in result else None
    if "src" in result and "dst" in result:
        channels = result.groupby(["src", "dst"], sort=False).indices  # (src, dst) -> positions, ascending
    else:
        channels = {(None, None): np.arange(len(result))}
    episodes = []
    for (src, dst), positions in channels.items():
        for run in _runs(positions[windowed[positions]], positions[~windowed[positions]]):
            first, last = run[0], run[-1]
            episodes.append({
                "time": None if times is None else _iso(times[first]),
                "end": None if times is None else _iso(times[last]),
                "node": node,
                "src": src,
                "dst": dst,
                "score": float(scores[run].max()),
                "threshold": float(threshold),
                "window": int(window),
                "packets": int(len(run)),
                "flagged": int(flags[run].sum()),
                "first_packet": int(packets[first]),
                "last_packet": int(packets[last]),
                "model": model,
            })
    return sorted(episodes, key=lambda e: e["first_packet"])


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
