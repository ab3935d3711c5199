"""Tests for the in-process federated runner."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from fedcl.config import FedCLConfig
from fedcl.federated import FederationResult, LocalUpdate, aggregate_round, dynamic_weights, run_federation
from fedcl.federated.aggregate import divergences
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
            assert set(stats) == {"loss", "distance", "own_frame_distance", "weight", "excluded", "reason"}
            assert all(isinstance(stats[k], float) for k in ("loss", "distance", "own_frame_distance", "weight"))
            assert stats["excluded"] is False and stats["reason"] is None
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


def test_divergence_is_measured_in_the_federations_frame_by_hand():
    # medians: centre (0, 0), scale (1, 1), so ‖s‖² = 2
    means = [np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 3.0])]
    stds = [np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([2.0, 1.0])]

    np.testing.assert_allclose(divergences(means, stds), [0.0, 1 / 2, (9 + 1) / 2])


def test_a_noisier_node_is_further_however_it_scales_itself():
    # the same centre, a spread three times the others': its own σ would call it close
    means = [np.zeros(4)] * 4
    stds = [np.ones(4), np.ones(4) * 1.1, np.ones(4) * 0.9, np.ones(4) * 3.0]

    d = divergences(means, stds)

    assert d[3] > 3 * max(d[:3])


def test_aggregate_round_matches_the_pieces():
    arrays = [np.zeros(2), np.ones((1, 2))]
    deltas = [[np.array([1.0, 0.0]), np.array([[2.0, 2.0]])], [np.array([0.0, 4.0]), np.array([[0.0, 0.0]])],
              [np.array([3.0, 0.0]), np.array([[0.0, 1.0]])]]
    means = [np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 3.0])]
    stds = [np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([2.0, 1.0])]
    updates = [LocalUpdate(d, n, m, 1.0, 1.0, 1.0, s) for d, n, m, s in zip(deltas, (10, 30, 60), means, stds)]

    dynamic = aggregate_round(arrays, updates, "dynamic")
    fedavg = aggregate_round(arrays, updates, "fedavg")

    w = np.array([1.0, 1 / 1.5, 1 / 6.0])  # 1 / (1 + d) with d = 0, 1/2, 5 (see above)
    np.testing.assert_allclose(dynamic.weights, w / w.sum())
    np.testing.assert_allclose(dynamic.arrays[0], (w[0] * np.array([1.0, 0.0]) + w[1] * np.array([0.0, 4.0])
                                                   + w[2] * np.array([3.0, 0.0])) / w.sum())
    np.testing.assert_allclose(dynamic.reference, (w[1] * means[1] + w[2] * means[2]) / w.sum())
    np.testing.assert_allclose(fedavg.weights, [0.1, 0.3, 0.6])
    np.testing.assert_allclose(fedavg.reference, [0.3, 1.8])
    assert dynamic.reasons == fedavg.reasons == [None] * 3


def test_a_node_with_one_training_row_is_a_clear_error():
    nodes = {"a": torch.randn(40, 115), "b": torch.randn(1, 115)}
    with pytest.raises(ValueError, match="'b' has 1 training row"):
        run_federation(nodes, FedCLConfig(rounds=1, batch_size=16, embedding_dim=4, hidden=8))


@pytest.mark.parametrize("layer, moved", [("head", [4, 5]), ("input", [0, 1]), (None, [0, 1, 2, 3, 4, 5])])
def test_train_only_moves_that_layer_alone(dynamic_run, layer, moved):
    # fine-tuning the federation's encoder on one node: a personal head, a personal input layer, or all of it
    node = {"cam": nodes()["cam"]}
    tuned = run_federation(node, dataclasses.replace(CONFIG, aggregation="fedavg"), initial=dynamic_run.arrays,
                           train_only=layer).arrays

    changed = [i for i, (a, b) in enumerate(zip(dynamic_run.arrays, tuned)) if not np.array_equal(a, b)]
    assert changed == moved


def test_train_only_names_a_layer():
    with pytest.raises(ValueError, match="train_only must be one of"):
        run_federation({"cam": nodes()["cam"]}, CONFIG, train_only="middle")
