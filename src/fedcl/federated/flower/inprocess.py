"""Run the Flower apps on one machine with no servers: a Grid that calls the ClientApp directly.

The ServerApp logic, strategy, records and ClientApp are exactly those of a deployment; only the
transport is replaced. This relies on internals of the pinned flwr (:data:`FLWR_VERSION`), all
in :func:`_act_as_superlink`, which refuses any other version.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from itertools import count
from pathlib import Path

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fedcl.config import FedCLConfig
from fedcl.federated.flower.client_app import app as fedcl_client_app
from fedcl.federated.flower.server import run_server
from fedcl.federated.flower.strategy import FedCLStrategy


_RUN_ID = 1
#: The flwr release whose private message metadata :func:`_act_as_superlink` sets.
FLWR_VERSION = "1.42.0"


def _act_as_superlink(message: Message | None = None, message_id: str = "") -> None:
    """Set by hand what a SuperLink and its task process set, through flwr's private attributes.

    Always the process-wide task identity that new messages take their run id from (node 0: the
    server side); with ``message``, its id, which the SuperLink gives a message when it is pushed.
    Raises RuntimeError on any flwr but :data:`FLWR_VERSION`: these internals change without notice.
    """
    installed = importlib.metadata.version("flwr")
    if installed != FLWR_VERSION:
        raise RuntimeError(f"the in-process Flower path sets private message metadata as flwr {FLWR_VERSION} does; "
                           f"flwr {installed} is installed: check fedcl/federated/flower/inprocess.py against it "
                           "and update FLWR_VERSION")
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = _RUN_ID, 0, 0
    if message is not None:
        message.metadata.__dict__["_message_id"] = message_id


class InProcessGrid(Grid):
    """Delivers each message to the ClientApp of its node, in this process, and returns the replies.

    Parameters
    ----------
    client_app : ClientApp
    node_configs : list of dict
        One node config per node (``data-path``, ``node-name``, ``partition-id``).
    run_config : dict
    """

    def __init__(self, client_app: ClientApp, node_configs: list[dict], run_config: dict | None = None) -> None:
        self._app = client_app
        _act_as_superlink()  # before the strategy creates any message
        self._contexts = {
            node_id: Context(run_id=_RUN_ID, node_id=node_id, node_config=dict(cfg), state=RecordDict(),
                             run_config=dict(run_config or {}))
            for node_id, cfg in enumerate(node_configs, start=1)
        }
        self._ids = count(1)
        self._replies: dict[str, Message] = {}
        self._run = None

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message_id = f"m{next(self._ids)}"
            _act_as_superlink(message, message_id)
            self._replies[message_id] = self._app(message, self._contexts[message.metadata.dst_node_id])
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def run_inprocess(config: FedCLConfig, node_configs: list[dict], out_dir: str | Path,
                  evaluate: bool = True) -> FedCLStrategy:
    """Train with the Flower apps over :class:`InProcessGrid`; writes what a deployment's server writes
    (with ``evaluate``, the nodes' own evaluation too)."""
    grid = InProcessGrid(fedcl_client_app, node_configs)
    return run_server(grid, config, out_dir, min_nodes=len(node_configs), evaluate=evaluate)
