"""The `fedcl flower superlink | supernode | run` wrappers behave as services (real Flower processes, loopback).

One insecure SuperLink wrapper is shared by the module (starting it costs 10-30 s). The tests run in
file order: its log and folders; `run --wait` stopped by SIGTERM (its run stays pending on the
SuperLink: one node is too few); a SuperNode wrapper stopped by SIGINT; then the SuperLink wrapper
itself stopped by SIGTERM with everything it started, the pending run's ServerApp included.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from fedcl.federated.flower.environment import base_env
from fedcl.federated.flower.health import wait_healthy
from fedcl.federated.flower.processes import stop_processes

FEDCL = str(Path(sys.executable).with_name("fedcl"))
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tree(proc: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children(recursive=True)


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.NoSuchProcess:  # gone, or a zombie not yet reaped, between listing and reading
        return ""


def _running(proc: subprocess.Popen, name: str) -> bool:
    """Whether a live process of ``proc``'s tree has ``name`` in its command line."""
    return any(name in _cmdline(p) for p in _tree(proc))


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.2)
    return found


def _stop_and_check(wrapper: subprocess.Popen, sig: int, group: bool = False) -> str:
    """Send ``sig`` to the wrapper alone (``group``: to its process group, as a terminal's Ctrl-C does; the
    wrapper must lead one); it must exit 128 + sig and leave no descendant running.

    Returns the command lines of the descendants it had, so a test can check there were some.
    """
    tree = _tree(wrapper)
    commands = " | ".join(_cmdline(p) for p in tree)
    os.killpg(wrapper.pid, sig) if group else wrapper.send_signal(sig)
    assert wrapper.wait(timeout=60) == 128 + sig
    _wait_for(lambda: not [p for p in tree if _alive(p)], 5, "descendants still running")
    return commands


@dataclass
class Link:
    root: Path
    address: str
    wrapper: subprocess.Popen
    database: Path
    log: Path


@pytest.fixture(scope="module")
def link(tmp_path_factory):
    root = tmp_path_factory.mktemp("flower-wrappers")
    port = _free_port()
    database, log = root / "state" / "new-folder" / "superlink.db", root / "logs" / "superlink.log"
    wrapper = subprocess.Popen([FEDCL, "flower", "superlink", "--insecure", "--host", "127.0.0.1", "--port",
                                str(port), "--database", str(database), "--log-file", str(log)],
                               env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"127.0.0.1:{port}", insecure=True, timeout=120, process=wrapper)
        yield Link(root, f"127.0.0.1:{port}", wrapper, database, log)
    finally:
        stop_processes([wrapper])


def test_superlink_wrapper_makes_its_folders_and_logs_with_timestamps_and_no_colour(link):
    # The log is written by a thread of the wrapper: wait for its own note
    def noted() -> str:
        text = link.log.read_text()
        return text if "fedcl: SuperLink healthy" in text else ""

    text = _wait_for(noted, 30, "the wrapper's note")
    assert link.database.is_file()  # its folder did not exist
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) > 3 and all(STAMP.match(line) for line in lines)
    assert "\x1b" not in text and "Starting Flower SuperLink" in text


def test_sigterm_on_run_wait_stops_its_flwr_children(link):
    # Prepare: a run that cannot start (min-nodes 2, no node), watched with --wait
    out = link.root / "wait.out"
    with out.open("w") as stdout:
        wrapper = subprocess.Popen([FEDCL, "flower", "run", "--superlink", link.address, "--insecure", "--wait",
                                    "--out", str(link.root / "run"), "--rounds", "1", "--min-nodes", "2"],
                                   env=base_env(), stdout=stdout, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: "submitted" in out.read_text(), 120, "run submitted")
        _wait_for(lambda: _tree(wrapper), 30, "a `flwr ls` child")  # polls every 3 s

        # Execute / Assert
        children = _stop_and_check(wrapper, signal.SIGTERM)
    finally:
        stop_processes([wrapper])
    assert "flwr ls" in children
    assert "stopped by SIGTERM" in out.read_text()


def test_sigint_on_supernode_wrapper_stops_its_superexec(link, fedmse_slice):
    # Prepare
    log = link.root / "logs" / "node-1.log"
    wrapper = subprocess.Popen([FEDCL, "flower", "supernode", "--insecure", "--superlink", link.address,
                                "--data", str(fedmse_slice / "Client-1"), "--partition-id", "1",
                                "--port", str(_free_port()), "--log-file", str(log)],
                               env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # a terminal of its own
    try:
        _wait_for(lambda: _running(wrapper, "flower-superexec") and _running(wrapper, "warm"), 120,
                  "flower-superexec and the warm worker started")

        # Execute / Assert: Ctrl-C, which a terminal sends to the whole group
        children = _stop_and_check(wrapper, signal.SIGINT, group=True)
    finally:
        stop_processes([wrapper])
    assert "flower-supernode" in children and "flower-superexec" in children
    text = log.read_text()
    assert "\x1b" not in text and "Traceback" not in text  # each program stopped once, by the wrapper


def test_sigterm_on_superlink_wrapper_stops_everything_it_started(link):
    # Prepare: the pending run's ServerApp runs under the SuperLink too
    _wait_for(lambda: _running(link.wrapper, "serverapp"), 120,
              "the pending run's ServerApp")

    # Execute / Assert
    children = _stop_and_check(link.wrapper, signal.SIGTERM)
    assert "flower-superlink" in children and "flower-superexec" in children


def test_a_superlink_that_cannot_start_ends_in_one_line_with_its_own_error(tmp_path):
    # Prepare: its port is taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # Execute
        done = subprocess.run([FEDCL, "flower", "superlink", "--insecure", "--host", "127.0.0.1", "--port", str(port),
                               "--log-file", str(tmp_path / "superlink.log")],
                              env=base_env(), capture_output=True, text=True, timeout=180)

    # Assert: flower-superlink's own words, and where the whole log is
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert "address already in use" in done.stderr and str(tmp_path / "superlink.log") in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
