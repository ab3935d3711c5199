"""Secure aggregation over Flower messages: the parties of :mod:`fedcl.privacy.secagg` on two sides of a wire.

The protocol and the rule are those of the in-process path; only the transport differs. After its train
reply (clear scalars only, :func:`~fedcl.federated.flower._records.scalar_records`) a node keeps its
update in ``context.state``, and the server drives each masked sum as four exchanges of ``query``
messages (:data:`~fedcl.federated.flower._records.SECURE_ACTIONS`): keys → shared keys → masked
input → unmasking shares, plus, for ``dynamic``, one that sends the mean frame and gets d_i back
(:func:`fedcl.privacy.secure_step` decides which). A SuperNode starts a fresh ClientApp process per
message, so between messages the node's protocol state (:meth:`Node.to_bytes`, secrets included)
lives in ``context.state`` too, which never leaves the node. A node that does not answer one exchange
is out of the rest of the round; the protocol recovers the sum when it drops after sharing its keys
and at least the threshold of nodes remain.
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedcl.federated.flower._records import SECURE_KEY, kept_update
from fedcl.privacy.secagg import Node, Server
from fedcl.privacy.secure_rules import node_distance, stats_vector, update_vector

__all__ = ["FlowerSecureRound", "node_step"]

#: Where a node keeps its protocol state between messages: one masked sum at a time.
_NODE_STATE_KEY = "fedcl-secagg-node"


def _ring(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u8").astype(np.uint64)


class FlowerSecureRound:
    """The server side of one round's masked sums, as :func:`fedcl.privacy.secure_step` calls them.

    Parameters
    ----------
    grid : Grid
    node_ids : list of int
        Flower node ids of the round's nodes; the node at position k is protocol node k + 1.
    server_round : int
        Sent with every message: a node answers only with the update it kept for this round.
    timeout : float
        Seconds each exchange waits for replies; nodes that miss it are out of the round.

    Attributes
    ----------
    servers : list of Server
        One per masked sum, holding everything the server received in it (its whole view).
    """

    def __init__(self, grid: Grid, node_ids: list[int], server_round: int, timeout: float | None) -> None:
        self.grid, self.node_ids, self.server_round, self.timeout = grid, node_ids, server_round, timeout
        self.servers: list[Server] = []

    def _exchange(self, action: str, requests: dict[int, dict]) -> dict[int, ConfigRecord]:
        """Send each protocol node its request; the replies of those that answered without error."""
        messages = [Message(RecordDict({SECURE_KEY: ConfigRecord({"server-round": self.server_round, **body})}),
                            dst_node_id=self.node_ids[i - 1], message_type=f"query.{action}")
                    for i, body in requests.items()]
        protocol_id = {self.node_ids[i - 1]: i for i in requests}
        replies = list(self.grid.send_and_receive(messages, timeout=self.timeout))
        for r in replies:  # else a node's failure would look like a dropout
            if r.has_error():
                logging.getLogger("flwr").warning("node %s failed %s: %s", r.metadata.src_node_id, action,
                                                  r.error.reason)
        return {protocol_id[r.metadata.src_node_id]: r.content[SECURE_KEY] for r in replies
                if not r.has_error() and r.metadata.src_node_id in protocol_id}

    def masked_sum(self, kind: str, weights: dict[int, float]) -> tuple[np.ndarray, list[int]]:
        """Σ of the listed nodes' vectors of ``kind`` (see :data:`fedcl.privacy.secure_rules.MaskedSum`)."""
        server = Server()
        self.servers.append(server)
        keys = self._exchange("secagg_keys", {i: {"id": i, "kind": kind, "weight": w} for i, w in weights.items()})
        keys = server.collect_keys({i: (r["c"], r["s"]) for i, r in keys.items()})
        ids = sorted(keys)
        listed = {"ids": ids, "c": [keys[i][0] for i in ids], "s": [keys[i][1] for i in ids],
                  "threshold": server.threshold}
        sealed = self._exchange("secagg_share", dict.fromkeys(ids, listed))
        inbox = server.route({u: dict(zip(r["to"], r["sealed"])) for u, r in sealed.items()})
        masked = self._exchange("secagg_mask", {v: {"from": list(box), "sealed": list(box.values())}
                                                for v, box in inbox.items()})
        survivors = server.collect_masked({v: _ring(r["masked"]) for v, r in masked.items()})
        shares = self._exchange("secagg_unmask", dict.fromkeys(survivors, {"survivors": survivors}))
        total = server.unmask({v: dict(zip(r["of"], r["shares"])) for v, r in shares.items()})
        return total, survivors

    def release_distances(self, centre: np.ndarray, scale: np.ndarray, ids: list[int]) -> dict[int, float]:
        """d_i of the listed nodes against the mean frame (m, s), from those that answered."""
        frame = {"centre": [float(v) for v in centre], "scale": [float(v) for v in scale]}
        replies = self._exchange("secagg_distance", dict.fromkeys(ids, frame))
        return {i: float(r["distance"]) for i, r in replies.items()}


def node_step(action: str, request: ConfigRecord, state: RecordDict) -> RecordDict:
    """A node's answer to one secure-aggregation message, from the update it kept in ``state``.

    The node's :class:`~fedcl.privacy.secagg.Node` is rebuilt from ``state`` and saved back after each
    step, and dropped after it sent its unmasking shares: a later request for other shares finds none.
    """
    update = kept_update(state, int(request["server-round"]))
    if action == "secagg_distance":
        centre, scale = (np.asarray(request[k], dtype=np.float64) for k in ("centre", "scale"))
        d = node_distance(update.mean_embedding, update.std_embedding, centre, scale)
        return RecordDict({SECURE_KEY: ConfigRecord({"distance": d})})
    if action == "secagg_keys":
        vector = (stats_vector(update) if request["kind"] == "stats"
                  else update_vector(update, float(request["weight"])))
        node = Node(int(request["id"]), vector)
        c, s = node.advertise_keys()
        reply = {"c": c, "s": s}
    else:
        if _NODE_STATE_KEY not in state:
            raise ValueError(f"{action}: this node holds no secure-aggregation state (it did not send its keys)")
        node = Node.from_bytes(state[_NODE_STATE_KEY]["node"])
        if action == "secagg_share":
            keys = {i: (c, s) for i, c, s in zip(request["ids"], request["c"], request["s"])}
            sealed = node.share_keys(keys, int(request["threshold"]))
            reply = {"to": list(sealed), "sealed": list(sealed.values())}
        elif action == "secagg_mask":
            reply = {"masked": node.masked_input(dict(zip(request["from"], request["sealed"]))).astype("<u8").tobytes()}
        elif action == "secagg_unmask":
            shares = node.unmasking_shares(list(request["survivors"]))
            del state[_NODE_STATE_KEY]  # this sum is over for the node: nothing more of its secrets to give
            return RecordDict({SECURE_KEY: ConfigRecord({"of": list(shares), "shares": list(shares.values())})})
        else:
            raise ValueError(f"unknown secure-aggregation action {action!r}")
    state[_NODE_STATE_KEY] = ConfigRecord({"node": node.to_bytes()})
    return RecordDict({SECURE_KEY: ConfigRecord(reply)})
