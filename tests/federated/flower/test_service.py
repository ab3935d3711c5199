"""A Flower program as a service: its log, its process tree, and its own reason when it fails (no servers)."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import psutil
import pytest

from fedcl.federated.flower.service import Service, Stopped, child_error, clean_line, stop_on_signals

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")

# A stand-in for a Flower program: coloured log lines, one child that starts a grandchild, then waits.
FAMILY = """
import subprocess, sys, time
print("\\x1b[92mINFO \\x1b[0m:      Starting", flush=True)
child = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
    "time.sleep(300)"])
print("children started", flush=True)
time.sleep(300)
"""


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.parametrize("lines, expected", [
    # flower-superlink with --database in a missing folder (traceback, then uvicorn's last word)
    (["Traceback (most recent call last):", '  File "x.py", line 1, in <module>',
      "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) unable to open database file",
      "2026-11-30T11:20:24.122Z ERROR [uvicorn.error] Application startup failed. Exiting."],
     "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) unable to open database file"),
    # flower-superlink on a port in use (no traceback, one ERROR line)
    (["2026-11-30T11:20:33.594Z ERROR [uvicorn.error] [Errno 98] error while attempting to bind on address "
      "('127.0.0.1', 9398): address already in use", "INFO:     Waiting for application shutdown."],
     "[Errno 98] error while attempting to bind on address ('127.0.0.1', 9398): address already in use"),
    # flower-supernode with another federation's CA (flwr's exit block)
    (["ERROR :     SSL/TLS handshake error detected.", "ERROR :     Exit Code: 305",
      "Failed to initialize the connection to the SuperLink.",
      "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate",
      "For more information, visit: <https://flower.ai/docs/framework/1.42/en/ref-exit-codes/305.html>",
      "INFO:     Shutting down"],
     "Failed to initialize the connection to the SuperLink. [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
     "failed: unable to get local issuer certificate (flwr exit code 305)"),
    # flower-supernode whose key is not enrolled: Flower's API code, logged before the exit block, is kept
    (["ERROR :     [code: 2004] Failed to activate SuperNode. Public key not recognized.",
      "ERROR :     Exit Code: 305", "Failed to initialize the connection to the SuperLink.",
      "For more information, visit: <https://flower.ai/docs/framework/1.42/en/ref-exit-codes/305.html>"],
     "[code: 2004] Failed to initialize the connection to the SuperLink. (flwr exit code 305)"),
    (["INFO :      Starting Flower SuperLink"], None),
])
def test_the_childs_own_error_is_found_in_its_output(lines, expected):
    assert child_error(lines) == expected


def test_colour_codes_are_removed():
    assert clean_line(b"\x1b[91mERROR \x1b[0m:     Exit Code: 305\n") == "ERROR :     Exit Code: 305"


def test_the_log_file_gets_timestamped_lines_without_colour(tmp_path):
    # Prepare
    log = tmp_path / "logs" / "program.log"  # the folder does not exist yet

    # Execute
    with Service("stand-in", [sys.executable, "-c", "print('\\x1b[93mWARNING\\x1b[0m: careful'); "
                                                    "print('done')"], os.environ, log) as program:
        assert program.wait() == 0
        program.note("stand-in finished")

    # Assert
    lines = log.read_text().splitlines()
    assert [STAMP.sub("", line) for line in lines] == ["WARNING: careful", "done", "fedcl: stand-in finished"]
    assert all(STAMP.match(line) for line in lines)
    assert "\x1b" not in log.read_text()


def test_a_failed_program_is_one_line_with_its_own_error(tmp_path):
    script = "import sys; print('INFO: starting'); sys.exit('ValueError: port must be an integer')"
    with Service("stand-in", [sys.executable, "-c", script], os.environ, tmp_path / "p.log") as program:
        assert program.wait() == 1
        text = str(program.failure())
    assert text == f"stand-in exited with code 1: ValueError: port must be an integer (log: {tmp_path / 'p.log'})"


def test_leaving_the_service_stops_its_whole_tree_and_reaps_it(tmp_path):
    # Prepare: the program, its child and its grandchild
    with Service("stand-in", [sys.executable, "-c", FAMILY], os.environ, tmp_path / "p.log") as program:
        root = psutil.Process(program.process.pid)
        _wait_for(lambda: len(root.children(recursive=True)) == 2)
        tree = [root, *root.children(recursive=True)]

    # Assert: our own child reaped; its descendants ended (orphans' zombies are for their new parent to reap)
    assert program.process.returncode == -signal.SIGTERM
    assert not psutil.pid_exists(program.process.pid)
    assert not [p for p in tree if _alive(p)]


def test_the_first_sigterm_raises_stopped_and_a_second_one_is_ignored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as stopped:
        with stop_on_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted by Stopped
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # during clean-up: ignored
                time.sleep(0.2)
    assert stopped.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the block


def test_a_closed_terminals_sighup_stops_too():
    # The programs run in sessions of their own, so only the wrapper hears the terminal go
    before = signal.signal(signal.SIGHUP, lambda *_: None)  # were it not handled, the test fails, not pytest
    try:
        with pytest.raises(Stopped) as stopped:
            with stop_on_signals():
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(5)  # interrupted by Stopped
    finally:
        signal.signal(signal.SIGHUP, before)
    assert stopped.value.signum == signal.SIGHUP
