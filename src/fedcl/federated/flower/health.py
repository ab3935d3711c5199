"""Wait for a SuperLink to come up: poll its ``GET /health`` over TLS checked against the CA."""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from fedcl.errors import ConfigError

__all__ = ["wait_healthy"]


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
            raise ConfigError("TLS needs the federation's CA certificate (ca_cert), or insecure=True")
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
