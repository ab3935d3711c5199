"""Signal handlers for the length of a block; the previous ones come back after it (main thread only)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ["handling"]


@contextmanager
def handling(handler: Callable[[int, object], None],
             signums: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """``handler`` handles ``signums`` inside the block."""
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
