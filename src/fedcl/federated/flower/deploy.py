"""Deploy fedcl on Flower: certificates, node keys, the commands to start and the run to submit.

A deployment (flwr 1.42.0) is one ``flower-superlink`` (the server side; it also starts the
ServerApp for each run) and one ``flower-supernode`` per data-holding machine (each starts a
ClientApp process per message). All traffic (Fleet, Control and Runtime APIs) goes over one HTTPS
port of the SuperLink. Runs are submitted with ``flwr run`` against the app in ``flower-app/``,
whose components are modules of the installed fedcl package: every machine needs fedcl installed
and nothing is installed at run time.

These are plain functions: they build argv lists and files, start nothing on their own (except
the short ``flwr`` CLI calls in :func:`submit_run`, :func:`run_status`, :func:`list_nodes` and
:func:`register_supernodes`), and are shared by ``fedcl flower ...`` and the tests. See
``docs/flower-deployment.md``.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fedcl.errors import InputError

#: Name of the SuperLink connection written to ``$FLWR_HOME/config.toml`` (``flwr run . fedcl``).
CONNECTION = "fedcl"
#: fedcl's default SuperLink port (Flower's own default, 8000, collides with many dev servers).
DEFAULT_PORT = 9092
#: Node-config keys the ClientApp reads (see :mod:`fedcl.federated.flower.client_app`).
NODE_CONFIG_KEYS = ("data-path", "node-name", "partition-id")

# Hosts every server certificate covers: the SuperLink starts its own ServerApp executor, which
# connects back over TLS to 127.0.0.1 when the SuperLink listens on 0.0.0.0 (flwr's
# resolve_bind_address), so a certificate without them breaks every run.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


# --------------------------------------------------------------------------------------------
# Certificates and SuperNode keys
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Certificates:
    """Paths of the TLS files :func:`generate_certificates` writes.

    ``ca_cert`` goes to every SuperNode and to whoever submits runs (``--root-certificates``);
    ``server_cert`` and ``server_key`` stay on the SuperLink machine.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_dir(cls, directory: str | Path) -> "Certificates":
        """The file names :func:`generate_certificates` uses, in ``directory``."""
        d = Path(directory)
        return cls(ca_cert=d / "ca.crt", server_cert=d / "server.pem", server_key=d / "server.key")


def _write_private(path: Path, data: bytes) -> None:
    # Private keys are created 0600 from the start, never briefly world-readable.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # de-duplicated, order kept
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate_certificates(out_dir: str | Path, hosts: Sequence[str] = _LOOPBACK_HOSTS,
                          days: int = 365) -> Certificates:
    """Write a self-signed CA and a SuperLink certificate signed by it.

    Parameters
    ----------
    out_dir : str or Path
        Folder for ``ca.crt``, ``server.pem`` and ``server.key`` (created; existing files are
        overwritten).
    hosts : sequence of str
        Names and IP addresses SuperNodes and ``flwr`` use to reach the SuperLink; they go in the
        certificate's subjectAltName. ``127.0.0.1`` and ``localhost`` are always added (the
        SuperLink's own ServerApp executor connects through loopback).
    days : int
        Validity of both certificates.

    Returns
    -------
    Certificates

    Notes
    -----
    The CA private key is never written: it exists only to sign the server certificate, so it
    cannot leak. To cover other hosts later, generate a new set and hand out the new ``ca.crt``.
    Keys are ECDSA P-256 (fast, accepted by every TLS stack in use).
    """
    certs = Certificates.in_dir(out_dir)
    now = _dt.datetime.now(_dt.timezone.utc)
    not_before, not_after = now - _dt.timedelta(minutes=5), now + _dt.timedelta(days=days)  # clock skew

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedcl"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "fedcl federation CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    all_hosts = [*hosts, *_LOOPBACK_HOSTS]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedcl"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, all_hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(all_hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    certs.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    certs.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(certs.server_key, server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certs


def generate_node_keys(out_dir: str | Path, n: int, first: int = 1) -> list[tuple[Path, Path]]:
    """Write ``n`` SuperNode authentication key pairs, ``node-<i>.key`` / ``node-<i>.pub``.

    flwr 1.42 authenticates SuperNodes by an ECDSA key on a NIST curve in OpenSSH format: the
    node signs its requests with the private key (``flower-supernode
    --auth-supernode-private-key``), and the SuperLink (``--enable-supernode-auth``) accepts only
    public keys registered with ``flwr supernode register`` (:func:`register_supernodes`). There
    is no key-list file any more (``--auth-list-public-keys`` was removed).

    Parameters
    ----------
    out_dir : str or Path
        Folder for the keys (created).
    n : int
        Number of key pairs.
    first : int
        Index of the first pair (file names ``node-<first>`` ... ``node-<first+n-1>``).

    Returns
    -------
    list of (Path, Path)
        (private key, public key) per node. The private key stays on its node; the public key
        goes to whoever registers nodes with the SuperLink.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(first, first + n):
        key = ec.generate_private_key(ec.SECP384R1())  # P-384: the curve Flower's docs use
        private, public = out / f"node-{i}.key", out / f"node-{i}.pub"
        _write_private(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                  serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                         serialization.PublicFormat.OpenSSH) + b"\n")
        pairs.append((private, public))
    return pairs


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def _binary(name: str) -> str:
    # The Flower entry points installed next to this interpreter: the right flwr version even
    # when the virtual environment is not activated.
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else name


def superlink_command(*, certs: Certificates | None = None, insecure: bool = False, host: str = "0.0.0.0",
                      port: int = DEFAULT_PORT, database: str | Path | None = None,
                      supernode_auth: bool = False) -> list[str]:
    """argv of ``flower-superlink`` for fedcl.

    Parameters
    ----------
    certs : Certificates, optional
        TLS files (:func:`generate_certificates`); required unless ``insecure``.
    insecure : bool
        Plain HTTP, for a throw-away test on one machine only.
    host, port : str, int
        Where the single HTTP(S) API listens (SuperNodes, ``flwr`` and the ServerApp all use it).
    database : str or Path, optional
        SQLite file for the SuperLink state (runs, nodes); in memory when None, so registered
        SuperNodes and run history are lost when the SuperLink stops.
    supernode_auth : bool
        Only registered SuperNodes may connect (:func:`register_supernodes`); needs TLS.

    Returns
    -------
    list of str
    """
    cmd = [_binary("flower-superlink"), "--host", host, "--port", str(port),
           # The app's dependencies are preinstalled: never let the SuperLink `uv sync` them
           # (with torch that is gigabytes per run).
           "--disable-runtime-dependency-installation"]
    if insecure:
        if supernode_auth:
            raise ValueError("SuperNode authentication needs TLS (give certs, not insecure=True)")
        cmd.append("--insecure")
    else:
        if certs is None:
            raise ValueError("TLS needs certificates (generate_certificates), or pass insecure=True")
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


def node_config(data_path: str | Path, partition_id: int, node_name: str | None = None) -> str:
    """The ``--node-config`` string the fedcl ClientApp reads.

    Parameters
    ----------
    data_path : str or Path
        This node's data folder (any layout fedcl reads), on the SuperNode machine; made absolute
        because the ClientApp process does not run in the SuperNode's working directory.
    partition_id : int
        This node's index; seeds its random stream. Unique per node.
    node_name : str, optional
        Which node of ``data_path`` this is, when the folder holds several.

    Returns
    -------
    str
    """
    parts = [f"data-path={_toml_literal('data-path', str(Path(data_path).expanduser().resolve()))}",
             f"partition-id={int(partition_id)}"]
    if node_name:
        parts.append(f"node-name={_toml_literal('node-name', node_name)}")
    return " ".join(parts)


def supernode_command(*, superlink: str, data_path: str | Path, partition_id: int, node_name: str | None = None,
                      root_certificates: str | Path | None = None, insecure: bool = False,
                      private_key: str | Path | None = None, host: str = "127.0.0.1", port: int = 9094,
                      max_retries: int | None = None) -> list[str]:
    """argv of ``flower-supernode`` for one fedcl node.

    Parameters
    ----------
    superlink : str
        ``HOST:PORT`` of the SuperLink; HOST must be in its certificate.
    data_path, partition_id, node_name
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
    cmd = [_binary("flower-supernode"), "--superlink", superlink, "--host", host, "--port", str(port),
           "--node-config", node_config(data_path, partition_id, node_name)]
    if insecure:
        if private_key is not None:
            raise ValueError("SuperNode authentication needs TLS (give root_certificates, not insecure=True)")
        cmd.append("--insecure")
    else:
        if root_certificates is None:
            raise ValueError("TLS needs the federation's CA certificate (root_certificates), or insecure=True")
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
        SuperLink connection name in ``$FLWR_HOME/config.toml`` (:func:`flwr_home_env`).
    stream : bool
        Follow the run's logs; the command then returns when the run ends (its exit code does
        not tell whether the run succeeded: check :func:`run_status`).

    Returns
    -------
    list of str
    """
    cmd = [_binary("flwr"), "run", str(Path(app_dir) if app_dir is not None else default_app_dir()), connection,
           "--format", "json"]
    for key, value in (run_config or {}).items():
        cmd += ["-c", f"{key}={_config_value(key, value)}"]
    if stream:
        cmd.append("--stream")
    return cmd


# --------------------------------------------------------------------------------------------
# Environment and the flwr CLI
# --------------------------------------------------------------------------------------------

def base_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Flower process of a fedcl deployment (SuperLink, SuperNode, flwr).

    Telemetry off; runtime dependency installation off (the SuperNodes and the SuperLink's
    ServerApp executor otherwise ``uv sync`` the app for each run); this interpreter's ``bin``
    first on PATH, because the SuperLink and SuperNodes start ``flower-superexec`` by name.
    """
    env = dict(os.environ if environ is None else environ)
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


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
        :func:`base_env` plus ``FLWR_HOME``.
    """
    home = Path(flwr_home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{connection}"', "", f"[superlink.{connection}]",
             f"address = {json.dumps(superlink_address)}"]
    if insecure:
        lines.append("insecure = true")
    else:
        if ca_cert is None:
            raise ValueError("TLS needs the federation's CA certificate (ca_cert), or insecure=True")
        lines.append(f"root-certificates = {json.dumps(str(Path(ca_cert).expanduser().resolve()))}")
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    env = base_env(environ)
    env["FLWR_HOME"] = str(home)
    return env


def _flwr_json(args: Sequence[str], env: Mapping[str, str], timeout: float = 120.0) -> dict:
    """Run a ``flwr ... --format json`` command and return its JSON answer."""
    done = subprocess.run([_binary("flwr"), *args], env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)
    # In JSON mode flwr prints the JSON document last on stdout (any progress text before it).
    text = done.stdout.strip()
    start = text.find("{")
    try:
        answer = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or not answer.get("success", False):
        detail = (answer or {}).get("error-message") if isinstance(answer, dict) else None
        raise RuntimeError(f"`flwr {' '.join(args)}` failed (exit {done.returncode}): "
                           f"{detail or (done.stdout + done.stderr).strip()[-2000:]}")
    return answer


def register_supernodes(public_keys: Iterable[str | Path], env: Mapping[str, str],
                        connection: str = CONNECTION, exist_ok: bool = False) -> list[int | None]:
    """Register SuperNode public keys with a SuperLink that runs ``--enable-supernode-auth``.

    Registration goes through the SuperLink's Control API (``flwr supernode register``) and is
    kept in its ``--database``; with an in-memory SuperLink it must be redone after a restart.

    Parameters
    ----------
    public_keys : iterable of str or Path
        ``node-<i>.pub`` files (:func:`generate_node_keys`).
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
        except RuntimeError as err:
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
        See :func:`run_command`.

    Returns
    -------
    int
    """
    answer = _flwr_json(run_command(run_config, app_dir=app_dir, connection=connection)[1:], env)
    return int(answer["run-id"])


def run_status(run_id: int, env: Mapping[str, str], connection: str = CONNECTION) -> str:
    """Status of a run as ``flwr ls`` shows it, e.g. ``pending``, ``running``, ``finished:completed``."""
    runs = _flwr_json(["ls", connection, "--run-id", str(run_id), "--format", "json"], env).get("runs", [])
    if not runs:
        raise RuntimeError(f"run {run_id} not found on the SuperLink")
    return str(runs[0]["status"])


def stop_run(run_id: int, env: Mapping[str, str], connection: str = CONNECTION) -> None:
    """Ask the SuperLink to stop a run (``flwr stop``); it ends as ``finished:stopped``."""
    _flwr_json(["stop", str(run_id), connection, "--format", "json"], env)


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


def wait_healthy(superlink_address: str, ca_cert: str | Path | None = None, *, insecure: bool = False,
                 timeout: float = 60.0, process: subprocess.Popen | None = None) -> float:
    """Wait until the SuperLink answers ``GET /health`` (over TLS checked against ``ca_cert``).

    Parameters
    ----------
    superlink_address : str
        ``HOST:PORT``.
    ca_cert : str or Path, optional
        The federation's ``ca.crt``; required unless ``insecure``.
    insecure : bool
    timeout : float
        Seconds before giving up.
    process : Popen, optional
        The SuperLink process when started here: fail at once if it exits.

    Returns
    -------
    float
        Seconds waited.

    Raises
    ------
    TimeoutError, RuntimeError
        Not healthy in time; the process exited.
    """
    if insecure:
        url, context = f"http://{superlink_address}/health", None
    else:
        if ca_cert is None:
            raise ValueError("TLS needs the federation's CA certificate (ca_cert), or insecure=True")
        url, context = f"https://{superlink_address}/health", ssl.create_default_context(cafile=str(ca_cert))
    start = time.monotonic()
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the SuperLink exited with code {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except ssl.SSLCertVerificationError:
            raise  # a wrong CA or host will not fix itself by waiting
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"SuperLink at {superlink_address} not healthy after {timeout:.0f} s")
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

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
