"""One Flower program run in the foreground the way a service manager (systemd) expects.

Its output goes, line by line, with a timestamp and without colour codes, to a log file or to
stdout; SIGTERM or SIGINT stops it with every process it started; and when it fails, one line
says why in its own words.
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TextIO

from fedcl.errors import InputError
from fedcl.federated.flower.processes import stop_processes
from fedcl.signals import handling

__all__ = ["Service", "Stopped", "child_error", "clean_line", "stop_on_signals"]

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # CSI sequences: colours, cursor moves
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Failure)\b(?::\s.*)?$")
_ERROR_LOG = re.compile(r"\bERROR\b\s*(?:\[[^\]]*\])?\s*:?\s*(?P<message>.+)$")
_LOG_LEVEL = re.compile(r"^(?:\S+\s+)?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")  # flwr, uvicorn log lines


def clean_line(raw: bytes | str) -> str:
    """A line of a child's output as text, without colour codes or the line break."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return _ANSI.sub("", text).rstrip("\r\n")


def _stamped(line: str) -> str:
    return f"{datetime.now().astimezone().isoformat(timespec='milliseconds')} {line}"


def _flwr_exit_reason(lines: list[str]) -> str | None:
    # flwr ends with "ERROR : Exit Code: N", its explanation on the next lines, then a link.
    for i in range(len(lines) - 1, -1, -1):
        found = _ERROR_LOG.search(lines[i])
        code = re.fullmatch(r"Exit Code: (\d+)", found["message"].strip()) if found else None
        if code:
            after = []
            for line in lines[i + 1:]:
                if line.startswith("For more information") or _LOG_LEVEL.match(line):
                    break
                after.append(line)
            # Flower's API error code, which tells the causes apart (docs/flower-deployment.md §4), is logged before
            api = [c for line in lines[:i] for c in re.findall(r"\[code: \d+\]", line)]
            explained = " ".join(after) or "no explanation"
            if api and api[-1] not in explained:
                explained = f"{api[-1]} {explained}"
            return f"{explained} (flwr exit code {code[1]})"
    return None


def child_error(lines: Iterable[str]) -> str | None:
    """The child's own reason for failing, from its last output lines.

    flwr's own explanation after its "Exit Code" line; else the last exception line of a traceback
    (``sqlite3.OperationalError: unable to open database file``); else the message of its last
    ERROR log line; None when there is none of these.
    """
    lines = [line.strip() for line in lines if line.strip()]
    reason = _flwr_exit_reason(lines)
    if reason:
        return reason
    for line in reversed(lines):
        if _EXCEPTION.match(line):
            return line
    for line in reversed(lines):
        found = _ERROR_LOG.search(line)
        if found:
            return found["message"].strip()
    return None


class _LogPump(threading.Thread):
    """Copies a child's output to ``sink`` as timestamped lines and keeps the last ones."""

    def __init__(self, stream: IO[bytes], sink: TextIO, keep: int = 200) -> None:
        super().__init__(daemon=True)
        self.stream, self.sink = stream, sink
        self.tail: collections.deque[str] = collections.deque(maxlen=keep)
        self.lock = threading.Lock()

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            self.write(clean_line(raw), keep=True)

    def write(self, line: str, keep: bool = False) -> None:
        with self.lock:
            if keep:
                self.tail.append(line)
            self.sink.write(_stamped(line) + "\n")
            self.sink.flush()


class Stopped(Exception):
    """SIGTERM or SIGINT asked this process to stop; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals(signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)) -> Iterator[None]:
    """Inside the block, the first SIGTERM/SIGINT/SIGHUP raises :class:`Stopped` (so ``finally`` and
    ``with`` blocks stop children, which run in sessions of their own: a closed terminal's SIGHUP reaches
    the wrapper alone); later ones are ignored while that happens. Main thread only."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not received:  # a second Ctrl-C must not cut the clean-up short
            received.append(signum)
            raise Stopped(signum)

    with handling(handler, signums):
        yield


class Service:
    """A Flower program run in the foreground; use as a context manager, which stops its whole tree.

    Parameters
    ----------
    name : str
        What the program is, in messages (``flower-superlink``).
    argv : sequence of str
    env : mapping
    log_file : Path, optional
        Where its output goes (appended; folders created); stdout when None.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_file: Path | None = None) -> None:
        self.name, self.argv, self.env, self.log_file = name, list(argv), dict(env), log_file
        self.process: subprocess.Popen | None = None
        self._pump: _LogPump | None = None
        self._sink: TextIO = sys.stdout

    def __enter__(self) -> "Service":
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._sink = self.log_file.open("a", encoding="utf-8")
        # Its own session: a terminal's Ctrl-C reaches the wrapper alone, which then stops the program once
        # (a program signalled by both printed tracebacks into the log).
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        self._pump = _LogPump(self.process.stdout, self._sink)
        self._pump.start()
        return self

    def __exit__(self, *exc: object) -> None:
        stop_processes([self.process])
        self._pump.join(timeout=5)  # EOF once every process holding the pipe is gone
        if self._sink is not sys.stdout:
            self._sink.close()

    def note(self, message: str) -> None:
        """A line of fedcl's own in the program's log (what the wrapper did, and when)."""
        self._pump.write(f"fedcl: {message}")

    def wait(self) -> int:
        """Wait for the program to exit, and for its last lines to reach the log; its exit code."""
        code = self.process.wait()
        self._pump.join(timeout=2)  # else a note() written now can land before them (children may hold the pipe)
        return code

    def exited(self) -> bool:
        return self.process.poll() is not None

    def failure(self) -> InputError:
        """One line: the program exited, with which code, in its own words, and where its log is."""
        self._pump.join(timeout=2)  # its last lines (children of it may still hold the pipe)
        with self._pump.lock:
            reason = child_error(self._pump.tail) or "it printed no error"
        where = f" (log: {self.log_file})" if self.log_file is not None else ""
        return InputError(f"{self.name} exited with code {self.process.returncode}: {reason}{where}")
