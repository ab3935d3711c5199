"""The argv of ``flower-superlink``, ``flower-supernode`` and ``flwr run`` for fedcl.

A deployment (flwr 1.42.0) is one ``flower-superlink`` (the server side; it also starts the
ServerApp for each run) and one ``flower-supernode`` per data-holding machine (each starts a
ClientApp process per message). All traffic (Fleet, Control and Runtime APIs) goes over one HTTPS
port of the SuperLink. Runs are submitted with ``flwr run`` against the app in ``flower-app/``,
whose components are modules of the installed fedcl package: every machine needs fedcl installed
and nothing is installed at run time.

These functions only build lists of strings; :mod:`fedcl.federated.flower.processes` starts them
and :mod:`fedcl.federated.flower.flwr_cli` runs the short ``flwr`` calls.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path

from fedcl.errors import ConfigError, InputError
from fedcl.federated.flower.certificates import Certificates
from fedcl.federated.flower.environment import flower_binary

__all__ = ["CONNECTION", "DEFAULT_PORT", "default_app_dir", "node_config", "run_command", "superlink_command",
           "supernode_command"]

#: Name of the SuperLink connection written to ``$FLWR_HOME/config.toml`` (``flwr run . fedcl``).
CONNECTION = "fedcl"
#: fedcl's default SuperLink port (Flower's own default, 8000, collides with many dev servers).
DEFAULT_PORT = 9092


def superlink_command(*, certs: Certificates | None = None, insecure: bool = False, host: str = "0.0.0.0",
                      port: int = DEFAULT_PORT, database: str | Path | None = None,
                      supernode_auth: bool = False) -> list[str]:
    """argv of ``flower-superlink`` for fedcl.

    Parameters
    ----------
    certs : Certificates, optional
        TLS files (:func:`~fedcl.federated.flower.certificates.generate_certificates`); required
        unless ``insecure``.
    insecure : bool
        Plain HTTP, for a throw-away test on one machine only.
    host, port : str, int
        Where the single HTTP(S) API listens (SuperNodes, ``flwr`` and the ServerApp all use it).
    database : str or Path, optional
        SQLite file for the SuperLink state (runs, nodes); in memory when None, so registered
        SuperNodes and run history are lost when the SuperLink stops.
    supernode_auth : bool
        Only registered SuperNodes may connect; needs TLS. ``fedcl flower superlink --registry``
        registers the enrolled keys (:func:`~fedcl.federated.flower.registry.register_enrolled`).

    Returns
    -------
    list of str
    """
    cmd = [flower_binary("flower-superlink"), "--host", host, "--port", str(port),
           # The app's dependencies are preinstalled: never let the SuperLink `uv sync` them
           # (with torch that is gigabytes per run).
           "--disable-runtime-dependency-installation"]
    if insecure:
        if supernode_auth:
            raise ConfigError("SuperNode authentication needs TLS (give certs, not insecure=True)")
        cmd.append("--insecure")
    else:
        if certs is None:
            raise ConfigError("TLS needs certificates (generate_certificates), or pass insecure=True")
        cmd += ["--ssl-ca-certfile", str(certs.ca_cert), "--ssl-certfile", str(certs.server_cert),
                "--ssl-keyfile", str(certs.server_key)]
    if database is not None:
        cmd += ["--database", str(database)]
    if supernode_auth:
        cmd.append("--enable-supernode-auth")
    return cmd


def _toml_literal(key: str, value: str) -> str:
    # Flower splits --node-config / -c on whitespace outside quotes and has no escapes inside
    # them: a single-quoted TOML literal string is the only way to pass paths with spaces.
    if "'" in value or "\n" in value:
        raise InputError(f"{key}: {value!r} may not contain a single quote or a newline")
    return f"'{value}'"


def node_config(data_path: str | Path, partition_id: int, node_name: str | None = None,
                worker_socket: str | Path | None = None, max_epsilon: float | None = None,
                privacy_ledger: str | Path | None = None, max_delta: float | None = None) -> str:
    """The ``--node-config`` string the fedcl ClientApp reads.

    Parameters
    ----------
    data_path : str or Path
        This node's data folder (any layout fedcl reads), on the SuperNode machine; made absolute
        because the ClientApp process does not run in the SuperNode's working directory.
    partition_id : int
        This node's index in the federation, distinct per node: the server aggregates replies
        in partition-id order (the in-process runner's node order when the ids follow it).
        Required: the ClientApp refuses to train without one.
    node_name : str, optional
        Which node of ``data_path`` this is, when the folder holds several. The node's name
        (this, or the one node of ``data_path``) keys its random stream and labels it in the
        run history.
    worker_socket : str or Path, optional
        The socket of this node's warm worker (:mod:`.warm`), which then does the ClientApp's work.
    max_epsilon, privacy_ledger, max_delta : float, str or Path, float, optional
        The node's own privacy budget and the file recording what it spends (both or neither), and its
        δ budget (default 1e-4; :mod:`fedcl.privacy.budget`): the node then trains only under
        record-level DP within them.

    Returns
    -------
    str
    """
    parts = [f"data-path={_toml_literal('data-path', str(Path(data_path).expanduser().resolve()))}",
             f"partition-id={int(partition_id)}"]
    if node_name:
        parts.append(f"node-name={_toml_literal('node-name', node_name)}")
    if worker_socket:
        parts.append(f"worker-socket={_toml_literal('worker-socket', str(worker_socket))}")
    if (max_epsilon is None) != (privacy_ledger is None) or (max_delta is not None and max_epsilon is None):
        raise ConfigError("give a node's privacy budget with the file that records it: --max-epsilon with "
                          "--privacy-ledger (and --max-delta only with them)")
    if max_epsilon is not None:
        if not (max_epsilon > 0 and math.isfinite(max_epsilon)):
            raise ConfigError(f"--max-epsilon {max_epsilon:g}: give a positive, finite ε")
        ledger = str(Path(privacy_ledger).expanduser().resolve())
        parts += [f"max-epsilon={float(max_epsilon)!r}", f"privacy-ledger={_toml_literal('privacy-ledger', ledger)}"]
    if max_delta is not None:
        if not 0 < max_delta < 1:
            raise ConfigError(f"--max-delta {max_delta:g}: give a δ in (0, 1)")
        parts.append(f"max-delta={float(max_delta)!r}")
    return " ".join(parts)


def supernode_command(*, superlink: str, data_path: str | Path, partition_id: int, node_name: str | None = None,
                      root_certificates: str | Path | None = None, insecure: bool = False,
                      private_key: str | Path | None = None, host: str = "127.0.0.1", port: int = 9094,
                      max_retries: int | None = None, worker_socket: str | Path | None = None,
                      max_epsilon: float | None = None, privacy_ledger: str | Path | None = None,
                      max_delta: float | None = None) -> list[str]:
    """argv of ``flower-supernode`` for one fedcl node.

    Parameters
    ----------
    superlink : str
        ``HOST:PORT`` of the SuperLink; HOST must be in its certificate.
    data_path, partition_id, node_name, worker_socket, max_epsilon, privacy_ledger, max_delta
        See :func:`node_config`.
    root_certificates : str or Path, optional
        The federation's ``ca.crt``; required unless ``insecure`` (without it the node would
        trust the system CAs instead of the federation's CA).
    insecure : bool
        Plain HTTP (only against an ``insecure`` SuperLink).
    private_key : str or Path, optional
        This node's ``node-<i>.key`` when the SuperLink has SuperNode authentication on.
    host, port : str, int
        The node's local API for its ClientApp processes; keep it on loopback. Several nodes on
        one machine need different ports.
    max_retries : int, optional
        Give up after this many failed reconnection attempts (None: keep trying, which lets a
        node ride out a SuperLink restart). TLS failures are never retried.

    Returns
    -------
    list of str
    """
    cmd = [flower_binary("flower-supernode"), "--superlink", superlink, "--host", host, "--port", str(port),
           "--node-config", node_config(data_path, partition_id, node_name, worker_socket, max_epsilon, privacy_ledger,
                                            max_delta)]
    if insecure:
        if private_key is not None:
            raise ConfigError("SuperNode authentication needs TLS (give root_certificates, not insecure=True)")
        cmd.append("--insecure")
    else:
        if root_certificates is None:
            raise ConfigError("TLS needs the federation's CA certificate (root_certificates), or insecure=True")
        cmd += ["--root-certificates", str(Path(root_certificates).expanduser().resolve())]
    if private_key is not None:
        cmd += ["--auth-supernode-private-key", str(Path(private_key).expanduser().resolve())]
    if max_retries is not None:
        cmd += ["--max-retries", str(int(max_retries))]
    return cmd


def _config_value(key: str, value: object) -> str:
    # -c values are parsed as TOML: strings quoted, booleans lower case.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return _toml_literal(key, str(value))
    raise TypeError(f"run config {key}: {type(value).__name__} is not int, float, bool or str")


def default_app_dir() -> Path:
    """The ``flower-app/`` folder of the fedcl source tree (what ``flwr run`` packs and sends)."""
    path = Path(__file__).resolve().parents[4] / "flower-app"
    if not (path / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{path}/pyproject.toml not found: run from a fedcl source checkout "
                                "(pip install -e .) or pass the app folder explicitly")
    return path


def run_command(run_config: Mapping[str, object] | None = None, *, app_dir: str | Path | None = None,
                connection: str = CONNECTION, stream: bool = False) -> list[str]:
    """argv of ``flwr run`` submitting the fedcl app to the SuperLink of ``connection``.

    Parameters
    ----------
    run_config : mapping, optional
        Overrides of ``[tool.flwr.app.config]`` in ``flower-app/pyproject.toml``: FedCLConfig
        field names (``rounds``, ``seed``, ...) plus ``out-dir`` (a path on the SuperLink
        machine), ``min-nodes``, ``round-timeout`` and ``resume``. Flower rejects unknown keys.
    app_dir : str or Path, optional
        The Flower app folder; :func:`default_app_dir` when None.
    connection : str
        SuperLink connection name in ``$FLWR_HOME/config.toml``
        (:func:`~fedcl.federated.flower.flwr_cli.flwr_home_env`).
    stream : bool
        Follow the run's logs; the command then returns when the run ends (its exit code does
        not tell whether the run succeeded: check :func:`~fedcl.federated.flower.flwr_cli.run_status`).

    Returns
    -------
    list of str
    """
    cmd = [flower_binary("flwr"), "run", str(Path(app_dir) if app_dir is not None else default_app_dir()), connection,
           "--format", "json"]
    for key, value in (run_config or {}).items():
        cmd += ["-c", f"{key}={_config_value(key, value)}"]
    if stream:
        cmd.append("--stream")
    return cmd


def worker_command(socket_path: str | Path) -> list[str]:
    """argv of a node's warm worker (:mod:`.warm`) serving on ``socket_path``."""
    return [sys.executable, "-m", "fedcl.federated.flower.warm", str(socket_path)]
