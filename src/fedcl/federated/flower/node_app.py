"""The ClientApp Flower starts for every message: forwards to the node's warm worker, if it has one.

It imports only flwr. With ``worker-socket`` in the node config (``fedcl flower supernode`` sets it)
the work is done by the node's worker (:mod:`.warm`); without it, or when the worker cannot be
reached, by :mod:`.client_app` in this process, as before. Either way the reply is the same.
"""

from __future__ import annotations

import logging
from multiprocessing import AuthenticationError

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

#: Message actions of secure aggregation (``query.<action>``, :mod:`.secure`).
SECURE_ACTIONS = ("secagg_keys", "secagg_share", "secagg_mask", "secagg_unmask", "secagg_distance")
#: Before the evaluation under ``acceptance_margin``: a node's federation view, for its peers (``query.release``).
RELEASE_ACTION = "release"

app = ClientApp()


def _work(msg: Message, context: Context) -> Message:
    from fedcl.federated.flower.warm import WORKER_KEY, call_worker

    socket = str(context.node_config.get(WORKER_KEY, ""))
    if socket:
        try:
            return call_worker(socket, msg, context)
        except (OSError, EOFError, AuthenticationError) as unreachable:  # gone, not up yet, or restarted: work here
            logging.getLogger("flwr").warning("warm worker %s unreachable (%s): working in this process", socket,
                                              unreachable)
    from fedcl.federated.flower.client_app import app as work

    return work(msg, context)


app.train()(_work)
app.evaluate()(_work)
for _action in (*SECURE_ACTIONS, RELEASE_ACTION):
    app.query(_action)(_work)
