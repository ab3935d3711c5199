"""Is a SuperLink there? Ask its ``GET /health`` (over TLS checked against the CA) and say in one line why not."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from fedcl.errors import ConfigError, InputError

__all__ = ["check_address", "on_this_machine", "probe_superlink", "tls_context", "wait_healthy"]


def check_address(address: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT``; ConfigError when it is not one."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{address!r} is not HOST:PORT (e.g. 10.0.0.5:9092)")
    return host.strip("[]"), int(port)


def on_this_machine(address: str) -> bool:
    """Whether ``HOST:PORT`` points at this machine (loopback, or an address of one of its interfaces)."""
    host, _ = check_address(address)
    try:
        resolved = {info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    if any(ipaddress.ip_address(a).is_loopback for a in resolved):
        return True
    mine = {a.address.split("%")[0] for addresses in psutil.net_if_addrs().values() for a in addresses}
    return bool(resolved & mine)


def tls_context(ca_cert: str | Path) -> ssl.SSLContext:
    """A client TLS context that trusts only ``ca_cert``; ConfigError when the file is missing or not PEM."""
    path = Path(ca_cert).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: CA certificate not found (give the federation's ca.crt)")
    try:
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError:
        raise ConfigError(f"{path}: not a PEM certificate (give the federation's ca.crt)") from None


def _health_url(address: str, ca_cert: str | Path | None, insecure: bool) -> tuple[str, ssl.SSLContext | None]:
    check_address(address)
    if insecure:
        return f"http://{address}/health", None
    if ca_cert is None:
        raise ConfigError("TLS needs the federation's CA certificate (ca_cert), or insecure=True")
    return f"https://{address}/health", tls_context(ca_cert)


def _why_unreachable(address: str, err: BaseException, ca_cert: str | Path | None, timeout: float) -> InputError:
    """One line for a failed ``GET /health``: what went wrong and what to check."""
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    where = f"the SuperLink at {address}"
    if isinstance(err, urllib.error.HTTPError):
        return InputError(f"{address} answers, but not as a SuperLink (HTTP {err.code} on /health): wrong port?")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return InputError(f"TLS: {where} is not trusted with {ca_cert} ({reason.verify_message}): wrong ca.crt, "
                          "or a host name not in the SuperLink's certificate")
    if isinstance(reason, ssl.SSLError):
        return InputError(f"TLS handshake with {address} failed ({reason.reason or reason}): does the SuperLink run "
                          "with --insecure? Then use --insecure here too")
    if isinstance(reason, (http.client.HTTPException, ConnectionResetError)):
        return InputError(f"{address} did not answer plain HTTP: the SuperLink probably uses TLS; give "
                          "--root-certificates ca.crt instead of --insecure")
    if isinstance(reason, ConnectionRefusedError):
        return InputError(f"nothing listens at {address} (connection refused): is the SuperLink running, "
                          "and is the port right?")
    if isinstance(reason, socket.gaierror):
        return InputError(f"cannot resolve the host of {address} ({reason.strerror})")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return InputError(f"no answer from {address} within {timeout:.0f} s: a firewall, or the wrong host?")
    return InputError(f"cannot reach {where}: {reason}")


def _get_health(url: str, context: ssl.SSLContext | None, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
        response.read()


def probe_superlink(address: str, ca_cert: str | Path | None = None, *, insecure: bool = False,
                    timeout: float = 10.0) -> None:
    """Ask the SuperLink once whether it is up; an :class:`~fedcl.errors.InputError` in one line if not.

    ``flwr`` reports every such failure (refused, timed out, untrusted certificate, TLS against a
    plain server) as "Connection to the SuperLink is unavailable"; this tells them apart.

    Parameters
    ----------
    address : str
        ``HOST:PORT``.
    ca_cert : str or Path, optional
        The federation's ``ca.crt``; required unless ``insecure``.
    insecure : bool
    timeout : float
        Seconds to wait for the answer.
    """
    url, context = _health_url(address, ca_cert, insecure)
    try:
        _get_health(url, context, timeout)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _why_unreachable(address, err, ca_cert, timeout) from None


def _may_come_up(err: BaseException) -> bool:
    # A SuperLink still starting refuses, drops or ignores connections; an untrusted certificate stays so.
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    return isinstance(reason, (ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException))


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
    TimeoutError
        Not healthy in time.
    InputError
        The process exited, or the SuperLink answered in a way waiting will not fix (an untrusted
        certificate, TLS against a plain server).
    """
    url, context = _health_url(superlink_address, ca_cert, insecure)
    start = time.monotonic()
    while True:
        if process is not None and process.poll() is not None:
            raise InputError(f"the SuperLink exited with code {process.returncode} before it was healthy")
        try:
            _get_health(url, context, timeout=2)
            return time.monotonic() - start
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if not _may_come_up(err):
                raise _why_unreachable(superlink_address, err, ca_cert, 2) from None
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"SuperLink at {superlink_address} not healthy after {timeout:.0f} s")
        time.sleep(0.5)
