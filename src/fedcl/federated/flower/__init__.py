"""Flower apps for fedcl: thin adapters around the same federated functions as the in-process runner.

The apps: :mod:`.client_app`, :mod:`.server_app` (over :mod:`.server` and :mod:`.strategy`), and
:mod:`.inprocess` to drive them without servers. A real deployment: :mod:`.certificates` (TLS
files, SuperNode keys), :mod:`.commands` (argv of the Flower programs), :mod:`.environment` (where
those programs are, the environment they run in), :mod:`.flwr_cli` (submit, watch, register),
:mod:`.health` (wait for a SuperLink) and :mod:`.processes` (start and stop process trees).
"""

from fedcl.federated.flower.inprocess import InProcessGrid, run_inprocess
from fedcl.federated.flower.server import run_server
from fedcl.federated.flower.strategy import FedCLStrategy

__all__ = ["FedCLStrategy", "InProcessGrid", "run_inprocess", "run_server"]
