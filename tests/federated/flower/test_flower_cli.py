"""`fedcl flower ...` mistakes end in one line and exit 2, with no traceback and nothing of the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig, save_config
from fedcl.federated.flower.run_dir import CHECKPOINT_FILE
from fedcl.rundir import CONFIG_FILE

runner = CliRunner()
FEDCL = str(Path(sys.executable).with_name("fedcl"))


def _dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def test_run_against_a_dead_port_says_so_in_one_line_and_leaks_no_environment(tmp_path):
    # Prepare: a secret in the environment, as an operator's shell may hold one
    env = {**os.environ, "FEDCL_TEST_SECRET": "hunter2-in-env", "COLUMNS": "200"}

    # Execute: the installed command, as an operator runs it
    done = subprocess.run([FEDCL, "flower", "run", "--superlink", _dead_address(), "--out", str(tmp_path / "r"),
                           "--insecure", "--wait"], env=env, capture_output=True, text=True, timeout=120)

    # Assert
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert output.strip().splitlines() == [output.strip()] and "connection refused" in output
    assert "Traceback" not in output and "hunter2" not in output and "exit 0" not in output


@pytest.mark.parametrize("ca_content, expected", [(None, "not found"), (b"not a certificate\n", "not a PEM")])
def test_run_with_a_bad_ca_file_exits_2(tmp_path, ca_content, expected):
    ca = tmp_path / "ca.crt"
    if ca_content is not None:
        ca.write_bytes(ca_content)
    result = runner.invoke(app, ["flower", "run", "--superlink", _dead_address(), "--out", str(tmp_path / "r"),
                                 "--root-certificates", str(ca)])
    assert expected in _one_line_exit_2(result)


def test_run_refuses_a_relative_out_and_an_address_without_port(tmp_path):
    relative = runner.invoke(app, ["flower", "run", "--superlink", _dead_address(), "--out", "runs/x", "--insecure"])
    no_port = runner.invoke(app, ["flower", "run", "--superlink", "127.0.0.1", "--out", str(tmp_path), "--insecure"])
    assert "absolute path" in _one_line_exit_2(relative)
    assert "HOST:PORT" in _one_line_exit_2(no_port)


def test_run_without_resume_refuses_an_out_holding_a_checkpoint(tmp_path):
    # Prepare: an earlier run's folder, on this machine (the SuperLink address is loopback)
    out = tmp_path / "run"
    out.mkdir()
    save_config(FedCLConfig(), out / CONFIG_FILE)
    (out / CHECKPOINT_FILE).write_bytes(b"")

    # Execute
    result = runner.invoke(app, ["flower", "run", "--superlink", _dead_address(), "--out", str(out), "--insecure"])

    # Assert: refused before any connection (the port is dead: a later check would say so instead)
    assert "--resume" in _one_line_exit_2(result)


def test_resume_without_a_checkpoint_or_with_other_settings_exits_2(tmp_path):
    # Prepare
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    save_config(FedCLConfig(seed=1), earlier / CONFIG_FILE)
    (earlier / CHECKPOINT_FILE).write_bytes(b"")
    base = ["flower", "run", "--superlink", _dead_address(), "--insecure", "--resume"]

    # Execute
    missing = runner.invoke(app, [*base, "--out", str(tmp_path / "empty")])
    changed = runner.invoke(app, [*base, "--out", str(earlier), "--seed", "2"])

    # Assert
    assert "no checkpoint.pt to resume from" in _one_line_exit_2(missing)
    assert "seed 1 -> 2" in _one_line_exit_2(changed)


def test_certs_refuses_to_overwrite_a_pki_without_force(tmp_path):
    # Prepare
    pki = tmp_path / "pki"
    assert runner.invoke(app, ["flower", "certs", str(pki), "--nodes", "2"]).exit_code == 0
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}

    # Execute
    refused = runner.invoke(app, ["flower", "certs", str(pki), "--nodes", "2"])
    forced = runner.invoke(app, ["flower", "certs", str(pki), "--nodes", "2", "--force"])

    # Assert: refused without touching a file; --force replaces every one of them
    assert "--force" in _one_line_exit_2(refused)
    after = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    assert set(after) == set(before) and all(after[p] != before[p] for p in before), forced.output


def test_certs_refuses_when_only_node_keys_exist_and_writes_nothing(tmp_path):
    # Prepare: node keys made earlier, no TLS files
    from fedcl.federated.flower.certificates import generate_node_keys

    generate_node_keys(tmp_path / "pki" / "nodes", 1)

    # Execute
    result = runner.invoke(app, ["flower", "certs", str(tmp_path / "pki"), "--nodes", "1"])

    # Assert
    assert "node keys" in _one_line_exit_2(result)
    assert not (tmp_path / "pki" / "ca.crt").exists()


@pytest.mark.parametrize("target, args, says", [
    ("a-file", [], "is a file"),
    ("pki", ["--days", "-5"], "at least one day"),
    ("pki", ["--nodes", "-1"], "node count ≥ 0"),
])
def test_certs_mistakes_exit_2_in_one_line_writing_nothing(tmp_path, target, args, says):
    (tmp_path / "a-file").write_text("x\n")

    result = runner.invoke(app, ["flower", "certs", str(tmp_path / target), *args])

    assert says in _one_line_exit_2(result)
    assert not (tmp_path / "pki").exists() and (tmp_path / "a-file").read_text() == "x\n"
