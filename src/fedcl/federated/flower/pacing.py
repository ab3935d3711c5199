"""Fleet settings of a Flower run: how many nodes a round needs, and how long it waits for them.

- ``min-nodes`` below 1 is a share of the fleet: of the enrolled nodes when the SuperLink keeps a
  registry, else of the nodes connected when the run starts (:func:`resolve_min_nodes`).
- :class:`PacedGrid` ends a round once every node answered or at a deadline measured from the rounds:
  a multiple of the slowest complete round so far, or of the time half of this round's nodes took,
  at least a floor and at most the run's ``round-timeout``. A node that hangs, or whose reply Flower
  loses, then costs a round a few times its usual length, not ten minutes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from fedcl.errors import ConfigError

__all__ = ["PacedGrid", "resolve_min_nodes"]

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


class PacedGrid:
    """A Grid that ends each train exchange once every node answered, or at its deadline.

    The deadline is ``multiple`` × a measured time, at least ``floor`` and at most ``ceiling``
    seconds: the slowest earlier train exchange that got every reply, and, within the exchange,
    the time half of the nodes took to answer; before either is known, ``ceiling``. Replies are
    pulled every ``poll`` seconds (flwr's own grid sleeps 3 s between pulls), for every exchange;
    the others (evaluation, secure aggregation) wait the ``timeout`` they are given. Everything else
    goes to ``grid``.
    """

    def __init__(self, grid, ceiling: float, multiple: float = 3.0, floor: float = 60.0, poll: float = 0.5) -> None:
        if multiple < 1 or floor <= 0:
            raise ConfigError(f"round timeout: multiple {multiple:g} must be ≥ 1 and floor {floor:g} s > 0")
        self._grid, self.ceiling, self.multiple, self.floor, self.poll = grid, ceiling, multiple, floor, poll
        self.slowest: float | None = None  # seconds of the slowest train exchange that got every reply

    def __getattr__(self, name: str):
        return getattr(self._grid, name)

    def _paced(self, measured: float) -> float:
        return min(self.ceiling, max(self.floor, self.multiple * measured))

    @property
    def timeout(self) -> float:
        """The deadline a train exchange starts with, in seconds."""
        return self.ceiling if self.slowest is None else self._paced(self.slowest)

    def send_and_receive(self, messages: Iterable, *, timeout: float | None = None) -> list:
        messages = list(messages)
        train = bool(messages) and messages[0].metadata.message_type == "train"
        deadline = self.timeout if train else (math.inf if timeout is None else timeout)
        started = time.monotonic()
        waiting = set(self._grid.push_messages(messages))
        pushed, replies = len(waiting), []
        while waiting:
            for reply in self._grid.pull_messages(list(waiting)):
                replies.append(reply)
                waiting.discard(reply.metadata.reply_to_message_id)
            elapsed = time.monotonic() - started
            if train and 2 * len(replies) >= pushed:  # half answered: the rest get a multiple of that
                deadline = min(deadline, self._paced(elapsed))
            if not waiting or elapsed >= deadline:
                break
            time.sleep(min(self.poll, deadline - elapsed))
        if not train:
            return replies
        if waiting:
            _log.warning("round: %d of %d nodes answered within %.3g s; the others are left out", len(replies),
                         pushed, deadline)
        else:
            took = time.monotonic() - started
            self.slowest = took if self.slowest is None else max(self.slowest, took)
        return replies
