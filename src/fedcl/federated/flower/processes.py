"""Start Flower processes with their output in a log file, and stop them with all their descendants.

Process trees come from psutil. A psutil process is its PID *and* its start time, so a PID that the
system reused after it was collected is never signalled. The SuperLink and SuperNodes start
``flower-superexec`` children in a new session (process groups do not cover them), which start
the ServerApp/ClientApp processes.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import psutil

__all__ = ["process_tree", "start_process", "stop_processes"]


def start_process(argv: Sequence[str], log_path: str | Path, env: Mapping[str, str],
                  cwd: str | Path | None = None) -> subprocess.Popen:
    """Start a Flower process with its output (stdout and stderr) appended to ``log_path``."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(env), cwd=None if cwd is None else str(cwd))


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def process_tree(pid: int) -> list[int]:
    """``pid``'s descendants, e.g. the ``flower-superexec`` a SuperLink starts.

    They must be found before ``pid`` dies: orphans are re-parented and cannot be traced back.
    """
    return [p.pid for p in _descendants(pid)]


def _running(proc: psutil.Process) -> bool:
    # A zombie is dead for our purposes; is_running() is False for a PID reused by another process.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            if proc.is_running():  # checks the start time too: never a reused PID
                proc.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _collect(procs: list[subprocess.Popen | int]) -> list[psutil.Process]:
    """Every process to stop: each of ``procs`` (unless exited) and its descendants, parents first."""
    found: dict[int, psutil.Process] = {}
    for p in procs:
        pid = p if isinstance(p, int) else p.pid
        if isinstance(p, int) or p.poll() is None:
            try:
                found.setdefault(pid, psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        for child in _descendants(pid):  # an exited Popen's orphans are out of reach (see process_tree)
            found.setdefault(child.pid, child)
    return list(found.values())


def stop_processes(procs: Iterable[subprocess.Popen | int], grace: float = 10.0,
                   sig: int = signal.SIGTERM) -> None:
    """Stop processes and all their descendants: ``sig``, then SIGKILL after ``grace`` s.

    Safe to call on processes that already exited. Descendants matter: without this the
    SuperLink's and SuperNodes' ``flower-superexec`` children (and their ServerApp/ClientApp
    processes) linger ~15 s or more after their parent is gone. ``Popen`` objects are reaped
    (their ``returncode`` set), so none is left a zombie.

    Parameters
    ----------
    procs : iterable of Popen or int
    grace : float
        Seconds to wait for a clean exit before SIGKILL.
    sig : int
        First signal; ``signal.SIGKILL`` kills at once (e.g. to simulate a machine failing).
    """
    procs = list(procs)
    popens = [p for p in procs if not isinstance(p, int)]
    targets = _collect(procs)
    _signal(targets, sig)
    deadline = time.monotonic() + (grace if sig != signal.SIGKILL else 0)
    while True:
        for p in popens:  # reap our own children as they exit
            p.poll()
        if not any(_running(t) for t in targets) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    _signal([t for t in targets if _running(t)], signal.SIGKILL)
    for p in popens:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
