"""Few-bit updates on Flower: the same training as the in-process runner, and nodes that fall out of sync."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Error, Message
from flwr.common.serde import recorddict_to_proto

from fedcl.config import FedCLConfig
from fedcl.federated import run_federation
from fedcl.federated.flower import InProcessGrid, run_inprocess, run_server
from fedcl.federated.flower.client_app import app as client_app
from fedcl.federated.flower.server import CHECKPOINT_FILE
from fedcl.pipeline import load_splits, scaled_training_rows

NAMES = ["Client-1", "Client-2", "Client-3"]


def node_configs(root):
    return [{"data-path": str(root / name), "partition-id": i} for i, name in enumerate(NAMES)]


class ForgetfulGrid(InProcessGrid):
    """Replies as a SuperNode does (a node's exception becomes an error reply), counts bytes each way,
    wipes one node's state before a given round, as a restarted SuperNode would have it, and can garble
    one node's reply in one round."""

    def __init__(self, *args, forget: tuple[int, int] | None = None, garble: tuple[int, int] | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.forget, self.garble, self.round, self.down = forget, garble, 0, []

    def pull_messages(self, message_ids):
        replies = list(super().pull_messages(message_ids))
        for reply in replies:
            if self.garble == (reply.metadata.src_node_id, self.round) and not reply.has_error():
                codes, scales = reply.content["arrays"].to_numpy_ndarrays()
                reply.content["arrays"] = ArrayRecord([codes[:-1], scales])  # one byte short
        return replies

    def push_messages(self, messages):
        messages = list(messages)
        if messages and messages[0].metadata.message_type == "train":  # a round's train messages, pushed at once
            self.round += 1
            self.down.append({m.metadata.dst_node_id: recorddict_to_proto(m.content).ByteSize() for m in messages})
            if self.forget and self.forget[1] == self.round:
                self._contexts[self.forget[0]].state.clear()
        ids = []
        for message in messages:
            try:
                ids += super().push_messages([message])
            except ValueError as exc:  # the message got its id when pushed, before the ClientApp raised
                ids.append(message.metadata.message_id)
                self._replies[ids[-1]] = Message(Error(code=0, reason=str(exc)), reply_to=message)
        return ids


def test_flower_path_equals_in_process_runner_with_four_bit_updates(fedmse_slice, tmp_path):
    # Prepare
    config = FedCLConfig(data=str(fedmse_slice), rounds=3, seed=5, compression_bits=4)
    splits = load_splits(config)

    # Execute
    plain = run_federation({s.name: scaled_training_rows(s) for s in splits}, config)
    flower = run_inprocess(config, node_configs(fedmse_slice), tmp_path / "run")

    # Assert: the server's θ and g, and every node's loss, as in-process
    saved = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    for a, b in zip(plain.arrays, saved["arrays"]):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(plain.reference, flower.reference, rtol=0, atol=1e-6)
    assert [h["loss"] for h in plain.history] == pytest.approx([h["loss"] for h in flower.history])


def test_a_node_that_lost_its_model_gets_it_in_full_and_rejoins(fedmse_slice, tmp_path):
    # Prepare: node 2 (Client-2) forgets everything before round 3, as after a restart
    config = FedCLConfig(data=str(fedmse_slice), rounds=4, seed=2, compression_bits=4)
    grid = ForgetfulGrid(client_app, node_configs(fedmse_slice), forget=(2, 3))

    # Execute
    strategy = run_server(grid, config, tmp_path / "run", min_nodes=3)

    # Assert: it misses round 3 (its delta applies to a model it no longer holds), then trains from θ̂ in full
    assert [sorted(h["nodes"]) for h in strategy.history] == [NAMES, NAMES, ["Client-1", "Client-3"], NAMES]
    first, _, third, fourth = grid.down
    assert max(first.values()) < 25_000  # round 1: deltas from the seeded initial encoder every node builds
    assert fourth[2] > 4 * fourth[1]  # the full model, float32, to the node out of sync; deltas to the others
    assert third[2] == third[1]


def test_a_garbled_reply_is_left_out_of_its_round_not_the_run(fedmse_slice, tmp_path):
    # Prepare: node 3's round-2 reply arrives one byte short
    config = FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2, compression_bits=4)
    grid = ForgetfulGrid(client_app, node_configs(fedmse_slice), garble=(3, 2))

    # Execute
    strategy = run_server(grid, config, tmp_path / "run", min_nodes=3)

    # Assert: round 2 aggregates the other two; node 3, no longer counted in sync, gets θ̂ in full in round 3
    assert [sorted(h["nodes"]) for h in strategy.history] == [NAMES, ["Client-1", "Client-2"], NAMES]
    assert grid.down[2][3] > 4 * grid.down[2][1]
