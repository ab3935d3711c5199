"""Tests for the in-process federated runner."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from fedcl.config import FedCLConfig
from fedcl.federated import FederationResult, LocalUpdate, aggregate_round, dynamic_weights, run_federation
from fedcl.federated.params import get_arrays
from fedcl.model import encoder_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = FedCLConfig(rounds=3, local_epochs=1, batch_size=16, embedding_dim=4, hidden=8, seed=5, aggregation="dynamic")
COUNTS = {"cam": 24, "bell": 40, "plug": 56}


def nodes():
    gen = torch.Generator().manual_seed(0)
    # Nodes with different distributions, as IoT devices have.
    return {name: torch.randn(n, 115, generator=gen) * (i + 1) + i for i, (name, n) in enumerate(COUNTS.items())}


@pytest.fixture(scope="module")
def dynamic_run():
    return run_federation(nodes(), CONFIG)


@pytest.fixture(scope="module")
def fedavg_run():
    return run_federation(nodes(), dataclasses.replace(CONFIG, aggregation="fedavg"))


def test_same_config_and_seed_is_deterministic(dynamic_run):
    again = run_federation(nodes(), CONFIG)
    other_seed = run_federation(nodes(), dataclasses.replace(CONFIG, seed=6))

    assert len(again.arrays) == len(dynamic_run.arrays)
    for a, b in zip(again.arrays, dynamic_run.arrays):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.reference, dynamic_run.reference)
    assert again.history == dynamic_run.history
    assert not np.array_equal(other_seed.arrays[0], dynamic_run.arrays[0])


def test_history_has_one_record_per_round(dynamic_run):
    history = dynamic_run.history

    assert [r["round"] for r in history] == [1, 2, 3]
    for record in history:
        assert set(record["nodes"]) == set(COUNTS)
        weights = [n["weight"] for n in record["nodes"].values()]
        assert sum(weights) == pytest.approx(1.0)
        assert all(w > 0 for w in weights)
        assert np.isfinite(record["loss"])
        expected_loss = np.average([record["nodes"][k]["loss"] for k in COUNTS], weights=list(COUNTS.values()))
        assert record["loss"] == pytest.approx(expected_loss)


def test_dynamic_weights_follow_recorded_distances(dynamic_run):
    for record in dynamic_run.history:
        distances = [record["nodes"][k]["distance"] for k in COUNTS]
        weights = [record["nodes"][k]["weight"] for k in COUNTS]

        np.testing.assert_allclose(weights, dynamic_weights(distances))


def test_fedavg_weights_proportional_to_row_counts(fedavg_run):
    expected = np.array(list(COUNTS.values())) / sum(COUNTS.values())

    for record in fedavg_run.history:
        np.testing.assert_allclose([record["nodes"][k]["weight"] for k in COUNTS], expected)


def test_result_holds_only_parameters_reference_and_history(dynamic_run):
    encoder = encoder_for(CONFIG, 115)

    fields = {f.name for f in dataclasses.fields(FederationResult)}

    assert fields == {"arrays", "reference", "history"}
    assert [a.shape for a in dynamic_run.arrays] == [a.shape for a in get_arrays(encoder)]
    assert dynamic_run.reference.shape == (CONFIG.embedding_dim,)
    for record in dynamic_run.history:
        assert set(record) == {"round", "loss", "contrastive", "reference_norm", "nodes"}
        for stats in record["nodes"].values():
            assert set(stats) == {"loss", "distance", "weight"}
            assert all(isinstance(v, float) for v in stats.values())
    # No array of the result has a row's width except the first layer's weight (hidden, 115).
    assert [a.shape for a in dynamic_run.arrays if 115 in a.shape] == [(CONFIG.hidden, 115)]
    # No row's bytes (nor its first 8 values) appear anywhere in the serialised result.
    blob = pickle.dumps(dynamic_run)
    for x in nodes().values():
        for row in x.numpy():
            assert row[:8].tobytes() not in blob and row[:8].astype(np.float64).tobytes() not in blob


def test_on_round_receives_each_record():
    seen = []

    result = run_federation(nodes(), dataclasses.replace(CONFIG, rounds=2), on_round=seen.append)

    assert seen == result.history
    assert len(seen) == 2


def test_training_moves_parameters_from_initialisation(dynamic_run):
    torch.manual_seed(CONFIG.seed)
    initial = get_arrays(encoder_for(CONFIG, 115))

    assert any(not np.allclose(a, b) for a, b in zip(initial, dynamic_run.arrays))
    assert np.all(np.isfinite(dynamic_run.reference)) and np.any(dynamic_run.reference != 0)


def test_aggregation_choice_changes_the_result(dynamic_run, fedavg_run):
    assert not np.array_equal(dynamic_run.arrays[0], fedavg_run.arrays[0])
    # Round 1 starts from the same θ and g, so the local updates and distances are the same.
    first_d = {k: v["distance"] for k, v in dynamic_run.history[0]["nodes"].items()}
    first_f = {k: v["distance"] for k, v in fedavg_run.history[0]["nodes"].items()}
    assert first_d == first_f


def test_aggregate_round_matches_the_pieces():
    arrays = [np.zeros(2), np.ones((1, 2))]
    updates = [
        LocalUpdate([np.array([1.0, 0.0]), np.array([[2.0, 2.0]])], 10, np.array([1.0, 0.0]), 0.0, 1.0, 1.0),
        LocalUpdate([np.array([0.0, 4.0]), np.array([[0.0, 0.0]])], 30, np.array([0.0, 1.0]), 1.0, 1.0, 1.0),
    ]

    new_d, g_d, w_d = aggregate_round(arrays, updates, "dynamic")
    new_f, g_f, w_f = aggregate_round(arrays, updates, "fedavg")

    np.testing.assert_allclose(w_d, [2 / 3, 1 / 3])
    np.testing.assert_allclose(new_d[0], [2 / 3, 4 / 3])
    np.testing.assert_allclose(new_d[1], [[1 + 4 / 3, 1 + 4 / 3]])
    np.testing.assert_allclose(g_d, [2 / 3, 1 / 3])
    np.testing.assert_allclose(w_f, [0.25, 0.75])
    np.testing.assert_allclose(new_f[0], [0.25, 3.0])
    np.testing.assert_allclose(g_f, [0.25, 0.75])


def test_a_node_with_one_training_row_is_a_clear_error():
    nodes = {"a": torch.randn(40, 115), "b": torch.randn(1, 115)}
    with pytest.raises(ValueError, match="'b' has 1 training row"):
        run_federation(nodes, FedCLConfig(rounds=1, batch_size=16, embedding_dim=4, hidden=8))
