"""Flower apps for fedcl: thin adapters around the same federated functions as the in-process runner.

The apps: :mod:`.client_app`, :mod:`.server_app` (over :mod:`.server` and :mod:`.strategy`), and
:mod:`.inprocess` to drive them without servers. A real deployment: :mod:`.certificates` (TLS
files, SuperNode keys), :mod:`.commands` (argv of the Flower programs), :mod:`.environment` (where
those programs are, the environment they run in), :mod:`.flwr_cli` (submit, watch, register),
:mod:`.health` (is a SuperLink there, and why not), :mod:`.processes` (start and stop process
trees) and :mod:`.service` (a Flower program run as a service: log, signals, one-line failures).

Names load on first use (:func:`fedcl._lazy_exports`): a ClientApp process, which Flower starts
for every message, never imports the server side.
"""

from fedcl import _lazy_exports

_EXPORTS = {
    ".inprocess": ["InProcessGrid", "run_inprocess"],
    ".server": ["run_server"],
    ".strategy": ["FedCLStrategy"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = ["FedCLStrategy", "InProcessGrid", "run_inprocess", "run_server"]
