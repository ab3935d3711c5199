"""The warm worker: a node's ClientApp work done in one long-lived process, the same as in the ClientApp's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from fedcl.config import FedCLConfig
from fedcl.federated.flower import InProcessGrid, run_server
from fedcl.federated.flower.client_app import app as client_app
from fedcl.federated.flower.commands import worker_command
from fedcl.federated.flower.node_app import app as node_app
from fedcl.federated.flower.server import CHECKPOINT_FILE

NAMES = ["Client-1", "Client-2", "Client-3"]


@pytest.fixture
def worker(tmp_path_factory):
    """A worker process serving on a socket in a private folder; stopped afterwards."""
    folder = tmp_path_factory.mktemp("worker")
    folder.chmod(0o700)
    socket = folder / "worker"
    process = subprocess.Popen(worker_command(socket), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not socket.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.1)
    yield socket, process
    process.terminate()
    process.wait(timeout=30)


def nodes(root, socket=None):
    extra = {"worker-socket": str(socket)} if socket else {}
    return [{"data-path": str(root / n), "partition-id": i, **extra} for i, n in enumerate(NAMES, start=1)]


def test_a_run_through_the_worker_equals_the_run_in_the_clientapp(fedmse_slice, tmp_path, worker):
    # Prepare: 4-bit updates, so each node's state (held model, residual) must come back from the worker
    config = FedCLConfig(rounds=3, seed=4, compression_bits=4)
    socket, _ = worker

    # Execute
    run_server(InProcessGrid(client_app, nodes(fedmse_slice)), config, tmp_path / "direct", min_nodes=3)
    run_server(InProcessGrid(node_app, nodes(fedmse_slice, socket)), config, tmp_path / "warm", min_nodes=3)

    # Assert: the same model, and the same evaluation by every node
    direct, warm = (torch.load(tmp_path / d / CHECKPOINT_FILE, weights_only=True) for d in ("direct", "warm"))
    for a, b in zip(direct["arrays"], warm["arrays"]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (tmp_path / "direct" / "fleet.json").read_text() == (tmp_path / "warm" / "fleet.json").read_text()


def test_the_nodes_error_comes_back_in_one_line(tmp_path, worker):
    # Prepare: a node config without a partition id
    socket, _ = worker
    grid = InProcessGrid(node_app, [{"data-path": str(tmp_path), "worker-socket": str(socket)}])

    # Execute
    with pytest.raises(RuntimeError) as failed:
        run_server(grid, FedCLConfig(rounds=1), tmp_path / "run", min_nodes=1)

    # Assert: the worker's reason, as the ClientApp's own error would read
    assert str(failed.value).startswith("InputError: node config has no partition-id")


def test_without_a_reachable_worker_the_clientapp_does_the_work(fedmse_slice, tmp_path, caplog):
    # Prepare: a socket nobody serves
    grid = InProcessGrid(node_app, nodes(fedmse_slice, tmp_path / "gone"))

    # Execute
    with caplog.at_level("WARNING", logger="flwr"):
        run_server(grid, FedCLConfig(rounds=1), tmp_path / "run", min_nodes=3, evaluate=False)

    # Assert
    assert (tmp_path / "run" / "model.pt").is_file()
    assert "unreachable" in caplog.text and "working in this process" in caplog.text


def test_the_worker_refuses_a_folder_others_can_enter(tmp_path):
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    done = subprocess.run(worker_command(folder / "worker"), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "closed to others (0700)" in done.stderr
    assert not (folder / "worker.key").exists()


def test_the_clientapp_process_imports_neither_torch_nor_fedcls_work():
    done = subprocess.run([sys.executable, "-c", "import sys, fedcl.federated.flower.node_app; "
                           "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('fedcl.pipeline') "
                           "or m == 'fedcl.federated.flower.client_app'))"], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


def test_a_client_without_the_key_or_gone_mid_request_costs_the_worker_nothing(tmp_path, worker):
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    socket, process = worker
    # Execute: a client with another key; one that sends half a request and leaves
    with pytest.raises(AuthenticationError):
        Client(str(socket), family="AF_UNIX", authkey=b"x" * 32)
    with Client(str(socket), family="AF_UNIX", authkey=socket.with_name("worker.key").read_bytes()) as half:
        half.send_bytes(b"\x00garbage")

    # Assert: the worker still answers (here with the node's own error)
    grid = InProcessGrid(node_app, [{"data-path": str(tmp_path), "worker-socket": str(socket)}])
    with pytest.raises(RuntimeError, match="node config has no partition-id"):
        run_server(grid, FedCLConfig(rounds=1), tmp_path / "run", min_nodes=1)
    assert process.poll() is None


def test_the_forwarding_clientapp_takes_every_message_the_working_one_answers():
    from fedcl.federated.flower import client_app, node_app

    # Flower keeps a ClientApp's handlers by message type; a type only the working app knows would fail on a SuperNode
    assert set(node_app.app._registered_funcs) == set(client_app.app._registered_funcs)
    assert "query.release" in node_app.app._registered_funcs
