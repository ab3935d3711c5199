"""Fleet settings of a Flower run: how many nodes a round needs, and how long it waits for them.

- ``min-nodes`` below 1 is a share of the fleet: of the enrolled nodes when the SuperLink keeps a
  registry, else of the nodes connected when the run starts (:func:`resolve_min_nodes`).
- :class:`PacedGrid` ends a round once every node answered or at a deadline measured from the rounds:
  a multiple of the slowest complete round so far, or of the time half of this round's nodes (and at
  least ``min-nodes``) took, at least a floor and at most the run's ``round-timeout``. A node that hangs, or whose reply Flower
  loses, then costs a round a few times its usual length, not ten minutes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from fedcl.errors import ConfigError

__all__ = ["PacedGrid", "check_pacing", "resolve_min_nodes"]

_log = logging.getLogger("flwr")


def resolve_min_nodes(value: float, grid) -> int:
    """``value`` as a node count: itself if ≥ 1 (a whole number), else ⌈value × fleet size⌉ (at least 1)."""
    if value >= 1:
        if value != int(value):
            raise ConfigError(f"min-nodes {value:g}: give a whole number of nodes, or a share of the fleet below 1")
        return int(value)
    if value <= 0:
        raise ConfigError(f"min-nodes {value:g}: give a number of nodes (≥ 1) or a share of the fleet in (0, 1)")
    enrolled = getattr(grid, "enrolled", None)  # EnrolledGrid: the registry is the fleet
    fleet = len(enrolled) if enrolled is not None else len(list(grid.get_node_ids()))
    if fleet == 0:
        raise ConfigError(f"min-nodes {value:g} is a share of the fleet, but no node is connected or enrolled yet")
    needed = max(1, math.ceil(value * fleet - 1e-9))
    _log.info("min-nodes %g of %d nodes: %d", value, fleet, needed)
    return needed


def check_pacing(round_timeout: float, multiple: float, floor: float, sample_fraction: float) -> None:
    """Refuse, in one line, fleet settings no run can use (before anything is written)."""
    if not round_timeout > 0:
        raise ConfigError(f"round-timeout {round_timeout:g}: give a positive number of seconds")
    if multiple < 1 or not floor > 0:
        raise ConfigError(f"timeout-multiple {multiple:g} must be ≥ 1 and timeout-floor {floor:g} s > 0")
    if not 0 < sample_fraction <= 1:
        raise ConfigError(f"sample-fraction {sample_fraction:g}: give a share of the nodes in (0, 1]")


class PacedGrid:
    """A Grid that ends each exchange of node work (train, evaluate) once every node answered, or at a deadline.

    A train exchange starts with ``multiple`` × the slowest earlier train exchange that got every
    reply (at least ``floor``, at most ``ceiling``; ``ceiling`` before one is known), an evaluate
    exchange with the timeout it is given. Once half of the nodes, and at least ``min_replies``, have
    answered, the rest get ``multiple`` × the time that took (at least ``floor``). Replies are pulled
    every ``poll`` seconds (flwr's own grid sleeps 3 s between pulls), for every exchange; the others
    (secure aggregation's steps) wait the ``timeout`` they are given. Everything else goes to ``grid``.
    """

    def __init__(self, grid, ceiling: float, multiple: float = 3.0, floor: float = 60.0, poll: float = 0.5,
                 min_replies: int = 1) -> None:
        self._grid, self.ceiling, self.multiple, self.floor, self.poll = grid, ceiling, multiple, floor, poll
        self.min_replies = min_replies
        self.slowest: float | None = None  # seconds of the slowest train exchange that got every reply

    def __getattr__(self, name: str):
        return getattr(self._grid, name)

    def _paced(self, measured: float) -> float:
        return max(self.floor, self.multiple * measured)

    @property
    def timeout(self) -> float:
        """The deadline a train exchange starts with, in seconds."""
        return self.ceiling if self.slowest is None else min(self.ceiling, self._paced(self.slowest))

    def send_and_receive(self, messages: Iterable, *, timeout: float | None = None) -> list:
        messages = list(messages)
        if not messages:  # e.g. a round node-level DP sampled nobody for
            return []
        kind = messages[0].metadata.message_type
        deadline = self.timeout if kind == "train" else (math.inf if timeout is None else timeout)
        started = time.monotonic()
        waiting = set(self._grid.push_messages(messages))
        pushed, replies = len(waiting), []
        enough = max(self.min_replies, math.ceil(pushed / 2))
        while waiting:
            for reply in self._grid.pull_messages(list(waiting)):
                replies.append(reply)
                waiting.discard(reply.metadata.reply_to_message_id)
            elapsed = time.monotonic() - started
            if kind in ("train", "evaluate") and len(replies) >= enough:  # the rest get a multiple of that
                deadline = min(deadline, self._paced(elapsed))
            if not waiting or elapsed >= deadline:
                break
            time.sleep(min(self.poll, deadline - elapsed))
        if kind != "train":
            return replies
        if waiting:
            _log.warning("round: %d of %d nodes answered within %.3g s; the others are left out", len(replies),
                         pushed, deadline)
        else:
            took = time.monotonic() - started
            self.slowest = took if self.slowest is None else max(self.slowest, took)
        return replies
