"""The fedcl ClientApp: which node configs it accepts, and what its reply says about the node."""

from __future__ import annotations

import subprocess
import sys

import pytest
from flwr.app import ArrayRecord, MessageType, RecordDict

from fedcl.config import FedCLConfig
from fedcl.errors import InputError
from fedcl.federated.flower import InProcessGrid, run_inprocess
from fedcl.federated.flower._records import config_record
from fedcl.federated.flower.client_app import app
from fedcl.federated.flower.server import CHECKPOINT_FILE
from fedcl.federated.params import get_arrays
from fedcl.model import initial_encoder


@pytest.mark.parametrize("partition, message", [
    (None, "node config has no partition-id"),
    ("first", "partition-id='first' is not an integer"),
])
def test_a_node_without_an_integer_partition_id_refuses_to_train(fedmse_slice, tmp_path, partition, message):
    # Prepare: two good nodes and one whose node config lacks (or garbles) its partition id
    nodes = [{"data-path": str(fedmse_slice / "Client-1"), "partition-id": 0},
             {"data-path": str(fedmse_slice / "Client-2"), "partition-id": 1},
             {"data-path": str(fedmse_slice / "Client-3")}]
    if partition is not None:
        nodes[2]["partition-id"] = partition

    # Execute
    with pytest.raises(InputError) as refused:
        run_inprocess(FedCLConfig(rounds=1), nodes, tmp_path / "run")

    # Assert: one line that says what is wrong and how to set it; no round was saved
    text = str(refused.value)
    assert message in text and "\n" not in text
    if partition is None:
        assert "--partition-id" in text
    assert not (tmp_path / "run" / CHECKPOINT_FILE).exists()


def test_the_reply_names_the_node_in_a_config_record(fedmse_slice):
    # Prepare: one round's message to one node
    config = FedCLConfig(rounds=1)
    grid = InProcessGrid(app, [{"data-path": str(fedmse_slice / "Client-2"), "partition-id": 4}])
    settings = config_record(config, None)
    settings["server-round"] = 1
    content = RecordDict({"arrays": ArrayRecord(get_arrays(initial_encoder(config, 115))), "config": settings})
    message = grid.create_message(content, MessageType.TRAIN, dst_node_id=1, group_id="1")

    # Execute
    [reply] = grid.send_and_receive([message])

    # Assert: the name of the node's data, which a MetricRecord could not carry
    assert dict(reply.content["node"]) == {"node-name": "Client-2", "partition-id": 4}
    assert list(reply.content.metric_records) == ["metrics"]
    assert "partition-id" not in reply.content["metrics"]


def test_a_clientapp_process_imports_no_server_side_detector_or_evaluation():
    # Flower starts a fresh process for every message: it must not pay for what training never uses.
    script = ("import sys, fedcl.federated.flower.client_app; "
              "print(' '.join(m for m in sys.modules if m.startswith(('fedcl', 'sklearn', 'matplotlib'))))")
    loaded = set(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                timeout=120).stdout.split())
    unwanted = {"fedcl.pipeline", "fedcl.federated.runner", "fedcl.federated.robust", "fedcl.federated.flower.server",
                "fedcl.federated.flower.strategy", "fedcl.model._detector", "fedcl.data._partition", "fedcl.eval",
                "sklearn.cluster", "sklearn.neighbors", "sklearn.metrics", "matplotlib"}
    assert "fedcl.federated.local" in loaded  # the probe sees fedcl's modules at all
    assert loaded & unwanted == set()
