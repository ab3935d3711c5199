"""FedCLStrategy: replies are aggregated in partition-id order and recorded under node names."""

from __future__ import annotations

from unittest.mock import Mock

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.federated import LocalUpdate, aggregate_round
from fedcl.federated.flower import FedCLStrategy, InProcessGrid
from fedcl.federated.flower._records import update_records
from fedcl.federated.flower.client_app import app

GLOBAL = [np.zeros((2, 3)), np.zeros(3)]


def shifted_update(n_samples: int, shift: float) -> LocalUpdate:
    """Δθ_i = shift everywhere; every statistic = shift."""
    return LocalUpdate(delta=[np.full_like(a, shift) for a in GLOBAL], n_samples=n_samples,
                       mean_embedding=np.full(4, shift), distance=shift, loss=shift, contrastive=shift,
                       std_embedding=np.full(4, 1 + shift))


def create_mock_reply(name: str, partition_id: int, n_samples: int, shift: float) -> Message:
    """A node's reply as the ClientApp builds it (:func:`shifted_update`)."""
    message = Mock(spec=Message)
    message.content = update_records(shifted_update(n_samples, shift), GLOBAL, name, partition_id)
    message.has_error.side_effect = lambda: False
    message.has_content.side_effect = lambda: True
    return message


def sent_strategy(n_nodes: int) -> FedCLStrategy:
    """A FedAvg-weighted strategy that has just sent GLOBAL to ``n_nodes`` nodes."""
    strategy = FedCLStrategy(FedCLConfig(aggregation="fedavg"), min_available_nodes=n_nodes,
                             min_train_nodes=n_nodes)
    strategy.configure_train(1, ArrayRecord(GLOBAL), ConfigRecord(), InProcessGrid(app, [{}] * n_nodes))
    return strategy


def test_replies_are_aggregated_in_partition_order_under_node_names():
    # Prepare: replies arrive in another order than their partition ids
    strategy = sent_strategy(3)
    replies = [create_mock_reply("gw-b", 2, 30, 0.3), create_mock_reply("gw-c", 0, 10, 0.1),
               create_mock_reply("gw-a", 1, 20, 0.2)]
    in_partition_order = [replies[1], replies[2], replies[0]]
    expected = aggregate_round(GLOBAL, [shifted_update(10, 0.1), shifted_update(20, 0.2),
                                        shifted_update(30, 0.3)], "fedavg").arrays

    # Execute
    arrays, _ = strategy.aggregate_train(1, replies)
    again, _ = sent_strategy(3).aggregate_train(1, in_partition_order)

    # Assert
    assert list(strategy.history[0]["nodes"]) == ["gw-c", "gw-a", "gw-b"]
    assert strategy.history[0]["nodes"]["gw-b"]["weight"] == pytest.approx(0.5)  # 30 of 60 rows
    for a, b, c in zip(arrays.to_numpy_ndarrays(), again.to_numpy_ndarrays(), expected):
        np.testing.assert_array_equal(a, b)  # bit for bit, whatever the arrival order
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("identities, message", [
    ([("gw", 0), ("gw", 1)], "node name gw"),
    ([("gw-a", 3), ("gw-b", 3)], "partition-id 3"),
])
def test_a_round_where_two_nodes_share_a_name_or_partition_id_is_refused(identities, message):
    # Prepare
    strategy = sent_strategy(2)
    replies = [create_mock_reply(name, partition, 10, 0.1) for name, partition in identities]

    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        strategy.aggregate_train(1, replies)
    assert strategy.history == []
