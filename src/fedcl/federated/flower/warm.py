"""A warm worker beside each SuperNode: the node's ClientApp work runs in one long-lived process.

flwr 1.42 starts a fresh ClientApp process for every message. Importing torch and fedcl and reading
the node's rows again cost that process seconds per round, several times what a round of local
training costs on light data. ``fedcl flower supernode`` therefore starts this worker beside
``flower-supernode`` and names its socket in the node config (``worker-socket``). The ClientApp
process (:mod:`.node_app`) then imports only flwr, forwards the message and the node's context to
the worker, and hands Flower back the worker's reply and the context's new state: the same work,
done by :mod:`.client_app` in a process that has its imports and the node's rows (cached) in memory.

The socket lives in a folder only the node's user can enter, and a connection must also prove it
holds the 32-byte key in ``<socket>.key`` (mode 0600; :mod:`multiprocessing.connection`'s HMAC
challenge). One message at a time: the worker serves connections in turn.

    python -m fedcl.federated.flower.warm SOCKET
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import traceback
from multiprocessing.connection import Client, Listener
from pathlib import Path

from flwr.app import Context, Message
from flwr.common.serde import context_from_proto, context_to_proto, message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Context as ProtoContext  # pylint: disable=no-name-in-module
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module

__all__ = ["WORKER_KEY", "call_worker", "serve"]

#: The node-config key naming the worker's socket.
WORKER_KEY = "worker-socket"
_OK, _FAILED = b"ok", b"failed"
_log = logging.getLogger("flwr")


def _key_path(socket_path: str | Path) -> Path:
    return Path(f"{socket_path}.key")


def call_worker(socket_path: str, message: Message, context: Context) -> Message:
    """The worker's reply to ``message``; ``context.state`` becomes the state the worker left.

    Raises OSError when the worker cannot be reached, RuntimeError with its one-line reason when
    the work failed there (the worker's log holds the traceback).
    """
    with Client(socket_path, family="AF_UNIX", authkey=_key_path(socket_path).read_bytes()) as conn:
        conn.send_bytes(message_to_proto(message).SerializeToString())
        conn.send_bytes(context_to_proto(context).SerializeToString())
        status, body = conn.recv_bytes(), conn.recv_bytes()
        if status != _OK:
            raise RuntimeError(body.decode())
        state = context_from_proto(ProtoContext.FromString(conn.recv_bytes())).state
    context.state = state
    return message_from_proto(ProtoMessage.FromString(body))


def _private_socket(socket_path: Path) -> bytes:
    """Check the socket's folder is the user's alone; write a fresh key beside the socket."""
    folder = socket_path.parent
    mode = folder.stat().st_mode
    if folder.stat().st_uid != os.getuid() or mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SystemExit(f"{folder}: the worker's folder must belong to this user and be closed to others (0700)")
    socket_path.unlink(missing_ok=True)
    key = os.urandom(32)
    fd = os.open(_key_path(socket_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


def _answer(conn, app) -> None:
    """Read one message and the node's context from ``conn``, do the work, send the reply and the new state."""
    message = message_from_proto(ProtoMessage.FromString(conn.recv_bytes()))
    context = context_from_proto(ProtoContext.FromString(conn.recv_bytes()))
    try:
        reply = app(message, context)
    except Exception as failed:  # the node's error goes back as Flower's error reply; the trace stays here
        traceback.print_exc()
        sys.stdout.flush()
        conn.send_bytes(_FAILED)
        conn.send_bytes(f"{type(failed).__name__}: {failed}".encode())
        return
    conn.send_bytes(_OK)
    conn.send_bytes(message_to_proto(reply).SerializeToString())
    conn.send_bytes(context_to_proto(context).SerializeToString())


def serve(socket_path: str | Path) -> None:
    """Serve ClientApp messages on ``socket_path`` until stopped (SIGTERM).

    A client that fails the key challenge, sends something unreadable or goes away mid-request costs
    that request only (a line in the log); the worker serves the next one.
    """
    from fedcl.federated.flower.client_app import app  # torch and fedcl: once, here

    path = Path(socket_path)
    key = _private_socket(path)
    with Listener(str(path), family="AF_UNIX", authkey=key) as listener:
        print(f"fedcl worker: ready on {path}", flush=True)
        while True:
            try:
                with listener.accept() as conn:
                    _answer(conn, app)
            except Exception as lost:  # noqa: BLE001  (key challenge failed, client gone, garbled request)
                print(f"fedcl worker: request dropped: {type(lost).__name__}: {lost}", flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
