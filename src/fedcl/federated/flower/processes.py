"""Start Flower processes with their output in a log file, and stop them with all their descendants.

Everything is done by PID: the SuperLink and SuperNodes start ``flower-superexec`` children (in a
new session, so process groups do not cover them), which start the ServerApp/ClientApp processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = ["process_tree", "start_process", "stop_processes"]


def start_process(argv: Sequence[str], log_path: str | Path, env: Mapping[str, str],
                  cwd: str | Path | None = None) -> subprocess.Popen:
    """Start a Flower process with its output (stdout and stderr) appended to ``log_path``."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(env), cwd=None if cwd is None else str(cwd))


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # the name in () may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid``'s descendants (children first), e.g. the ``flower-superexec`` a SuperLink starts.

    They must be found before ``pid`` dies: orphans are re-parented and cannot be traced back.
    The SuperLink starts its executor in a new session, so process groups do not cover it.
    """
    if Path("/proc/self/stat").exists():
        children = _children_map()

        def direct(p: int) -> list[int]:
            return children.get(p, [])
    else:  # macOS and other systems without /proc
        def direct(p: int) -> list[int]:
            done = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True, check=False)
            return [int(x) for x in done.stdout.split()]
    found, todo = [], [pid]
    while todo:
        for child in direct(todo.pop()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def stop_processes(procs: Iterable[subprocess.Popen | int], grace: float = 10.0,
                   sig: int = signal.SIGTERM) -> None:
    """Stop processes and all their descendants, by PID: ``sig``, then SIGKILL after ``grace`` s.

    Safe to call on processes that already exited. Descendants matter: without this the
    SuperLink's and SuperNodes' ``flower-superexec`` children (and their ServerApp/ClientApp
    processes) linger ~15 s or more after their parent is gone.

    Parameters
    ----------
    procs : iterable of Popen or int
    grace : float
        Seconds to wait for a clean exit before SIGKILL.
    sig : int
        First signal; ``signal.SIGKILL`` kills at once (e.g. to simulate a machine failing).
    """
    procs = list(procs)
    pids: list[int] = []
    for p in procs:
        pid = p if isinstance(p, int) else p.pid
        if isinstance(p, int) or p.poll() is None:
            pids += [pid, *process_tree(pid)]
        else:  # exited already; orphans it left are out of reach (see process_tree)
            pids += process_tree(pid)
    pids = list(dict.fromkeys(pids))

    def signal_all(s: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, s)
            except (ProcessLookupError, PermissionError):
                pass

    signal_all(sig)
    deadline = time.monotonic() + grace
    while sig != signal.SIGKILL and time.monotonic() < deadline:
        for p in procs:  # reap our own children so they do not stay zombies
            if not isinstance(p, int):
                p.poll()
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.1)
    if any(_alive(pid) for pid in pids):
        signal_all(signal.SIGKILL)
    for p in procs:
        if not isinstance(p, int):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
