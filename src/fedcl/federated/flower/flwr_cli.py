"""Fedcl's use of the ``flwr`` CLI: its configuration home, and submitting, watching and registering.

``flwr`` reads the SuperLink's address and CA from ``$FLWR_HOME/config.toml`` (by connection
name), so :func:`flwr_home_env` writes that file and every other function here runs ``flwr ...
--format json`` with the environment it returns.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from fedcl.errors import ConfigError, InputError
from fedcl.federated.flower.commands import CONNECTION, run_command
from fedcl.federated.flower.environment import base_env, flower_binary

__all__ = ["FlwrError", "flwr_home_env", "list_nodes", "register_supernodes", "run_info", "run_status", "submit_run",
           "wait_finished"]


class FlwrError(InputError):
    """A ``flwr`` command reported a failure (SuperLink unreachable, refused, unknown run): its reason, one line."""


def flwr_home_env(flwr_home: str | Path, superlink_address: str, ca_cert: str | Path | None = None, *,
                  insecure: bool = False, connection: str = CONNECTION,
                  environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write ``$FLWR_HOME/config.toml`` with a SuperLink connection and return the environment.

    ``flwr run``, ``flwr ls`` and ``flwr supernode ...`` read their SuperLink address and CA from
    that file (by connection name), not from options, so the CLI is used with this environment.

    Parameters
    ----------
    flwr_home : str or Path
        Folder for Flower's CLI configuration (created). Its ``config.toml`` is overwritten.
    superlink_address : str
        ``HOST:PORT`` of the SuperLink; HOST must be in its certificate.
    ca_cert : str or Path, optional
        The federation's ``ca.crt``; required unless ``insecure``.
    insecure : bool
    connection : str
        Name of the connection (also made the default one).
    environ : mapping, optional
        Base environment (``os.environ`` when None).

    Returns
    -------
    dict
        :func:`~fedcl.federated.flower.environment.base_env` plus ``FLWR_HOME``.
    """
    home = Path(flwr_home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{connection}"', "", f"[superlink.{connection}]",
             f"address = {json.dumps(superlink_address)}"]
    if insecure:
        lines.append("insecure = true")
    else:
        if ca_cert is None:
            raise ConfigError("TLS needs the federation's CA certificate (ca_cert), or insecure=True")
        lines.append(f"root-certificates = {json.dumps(str(Path(ca_cert).expanduser().resolve()))}")
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    env = base_env(environ)
    env["FLWR_HOME"] = str(home)
    return env


def _flwr_reason(answer: object, stdout: str, stderr: str) -> str:
    """flwr's own reason for a failure, in one line, without its "Using SuperLink" preamble."""
    text = answer.get("error-message") if isinstance(answer, dict) and answer.get("error-message") else ""
    text = text or stderr.strip() or stdout.strip() or "no reason given"
    lines = [line.strip() for line in str(text).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("Using SuperLink", "Listing", "Loading", "🎊"))]
    reason = " ".join(kept or lines).strip()
    return reason if len(reason) <= 400 else reason[-400:]


def _flwr_json(args: Sequence[str], env: Mapping[str, str], timeout: float = 120.0) -> dict:
    """Run a ``flwr ... --format json`` command and return its JSON answer; FlwrError when it failed.

    In JSON mode flwr exits 0 even when it failed: only ``"success"`` in its answer tells.
    """
    try:
        done = subprocess.run([flower_binary("flwr"), *args], env=dict(env), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FlwrError(f"`flwr {args[0]}` gave no answer within {timeout:.0f} s") from None
    text = done.stdout.strip()
    start = text.find("{")  # the JSON document comes last on stdout, after any progress text
    try:
        answer = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or not answer.get("success", False):
        code = f" (exit {done.returncode})" if done.returncode else ""
        raise FlwrError(f"`flwr {args[0]}` failed{code}: {_flwr_reason(answer, done.stdout, done.stderr)}")
    return answer


def register_supernodes(public_keys: Iterable[str | Path], env: Mapping[str, str],
                        connection: str = CONNECTION, exist_ok: bool = False) -> list[int | None]:
    """Register SuperNode public keys with a SuperLink that runs ``--enable-supernode-auth``.

    Registration goes through the SuperLink's Control API (``flwr supernode register``) and is
    kept in its ``--database``; with an in-memory SuperLink it must be redone after a restart.

    Parameters
    ----------
    public_keys : iterable of str or Path
        ``node-<i>.pub`` files (:func:`~fedcl.federated.flower.certificates.generate_node_keys`).
    env : mapping
        From :func:`flwr_home_env`.
    connection : str
    exist_ok : bool
        Skip keys the SuperLink already has (their entry is None) instead of failing: lets a
        restarted SuperLink with a database re-run the same registration.

    Returns
    -------
    list of int or None
        The node id the SuperLink gives each key (it shows in :func:`list_nodes`).
    """
    ids: list[int | None] = []
    for path in public_keys:
        try:
            answer = _flwr_json(["supernode", "register", str(Path(path).expanduser().resolve()), connection,
                                 "--format", "json"], env)
        except FlwrError as err:
            if exist_ok and "already in use" in str(err):
                ids.append(None)
                continue
            raise
        ids.append(int(answer["node-id"]))
    return ids


def list_nodes(env: Mapping[str, str], connection: str = CONNECTION) -> list[dict]:
    """The SuperLink's SuperNodes (``flwr supernode ls``): dicts with ``node-id`` and ``status``.

    ``status`` is ``online`` for a connected node; registered nodes that never connected show as
    ``registered``, and disconnected ones as ``offline``.
    """
    return list(_flwr_json(["supernode", "ls", connection, "--format", "json"], env).get("nodes", []))


def submit_run(env: Mapping[str, str], run_config: Mapping[str, object] | None = None, *,
               app_dir: str | Path | None = None, connection: str = CONNECTION) -> int:
    """Submit a fedcl run (``flwr run``) and return its run id without waiting for it.

    Parameters
    ----------
    env : mapping
        From :func:`flwr_home_env`.
    run_config, app_dir, connection
        See :func:`~fedcl.federated.flower.commands.run_command`.

    Returns
    -------
    int
    """
    answer = _flwr_json(run_command(run_config, app_dir=app_dir, connection=connection)[1:], env)
    return int(answer["run-id"])


def run_info(run_id: int, env: Mapping[str, str], connection: str = CONNECTION) -> dict:
    """What ``flwr ls --run-id`` says of a run: ``status``, ``status-details`` (why it failed), times."""
    runs = _flwr_json(["ls", connection, "--run-id", str(run_id), "--format", "json"], env).get("runs", [])
    if not runs:
        raise FlwrError(f"run {run_id} not found on the SuperLink")
    return dict(runs[0])


def run_status(run_id: int, env: Mapping[str, str], connection: str = CONNECTION) -> str:
    """Status of a run as ``flwr ls`` shows it, e.g. ``pending``, ``running``, ``finished:completed``."""
    return str(run_info(run_id, env, connection)["status"])


def wait_finished(run_id: int, env: Mapping[str, str], timeout: float = 3600.0, poll: float = 3.0,
                  connection: str = CONNECTION) -> str:
    """Poll a run until it finishes and return its final status.

    Success is ``finished:completed``; ``finished:failed`` and ``finished:stopped`` are the other
    ends. (``flwr run --stream`` exits 0 even for a failed run, so only the status tells.)

    Parameters
    ----------
    run_id : int
    env : mapping
        From :func:`flwr_home_env`.
    timeout : float
        Seconds before giving up.
    poll : float
        Seconds between checks (the SuperLink itself moves in ~3 s steps).
    connection : str

    Returns
    -------
    str

    Raises
    ------
    TimeoutError
        The run had not finished after ``timeout`` seconds (it keeps running).
    """
    deadline = time.monotonic() + timeout
    status = ""
    while True:
        status = run_status(run_id, env, connection)
        if status.startswith("finished"):
            return status
        if time.monotonic() >= deadline:
            raise TimeoutError(f"run {run_id} not finished after {timeout:.0f} s (status {status!r})")
        time.sleep(poll)
