"""Tests for the dynamic and FedAvg server steps under secure aggregation."""

import numpy as np
import pytest

from fedcl.config import AGGREGATIONS, SECURE_AGGREGATIONS, FedCLConfig
from fedcl.errors import ConfigError
from fedcl.federated import LocalUpdate, aggregate_round, apply_updates, dynamic_weights, reference_vector
from fedcl.federated.aggregate import divergences
from fedcl.privacy import node_distance, secure_aggregate_round

ARRAYS = [np.zeros((3, 4), dtype=np.float32), np.zeros(4, dtype=np.float32), np.array(7, dtype=np.int64)]
TOL = 1e-6  # float32 parameters: quantisation (≤ 1e-9 here) is far below their own rounding


def updates(n: int, seed: int = 0) -> list[LocalUpdate]:
    rng = np.random.default_rng(seed)
    return [LocalUpdate(delta=[rng.normal(scale=1e-2, size=a.shape).astype(a.dtype) if a.dtype.kind == "f"
                               else np.array(rng.integers(0, 3)) for a in ARRAYS],
                        n_samples=int(rng.integers(10, 500)), mean_embedding=rng.normal(i % 3, 1, size=5),
                        distance=1.0, loss=1.0, contrastive=1.0, std_embedding=rng.uniform(0.5, 2 + i, size=5))
            for i in range(n)]


def assert_same_step(secure, clear):
    for a, b in zip(secure.arrays, clear.arrays):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)
    np.testing.assert_allclose(secure.reference, clear.reference, rtol=0, atol=TOL)
    np.testing.assert_allclose(secure.weights, clear.weights, rtol=1e-9)


def test_node_distance_is_the_divergence_formula_in_the_frame_it_is_given():
    ups = updates(5)
    means, stds = [u.mean_embedding for u in ups], [u.std_embedding for u in ups]

    at_median = [node_distance(m, s, np.median(means, axis=0), np.median(stds, axis=0)) for m, s in zip(means, stds)]

    np.testing.assert_allclose(at_median, divergences(means, stds), rtol=1e-12)


def test_fedavg_under_masking_equals_the_clear_step():
    ups = updates(6, seed=1)

    step, distances = secure_aggregate_round(ARRAYS, ups, "fedavg")

    assert_same_step(step, aggregate_round(ARRAYS, ups, "fedavg"))
    assert distances == [None] * 6  # nothing tells the server how far a node sits


def test_dynamic_with_two_nodes_equals_the_clear_step():
    ups = updates(2, seed=2)  # the median of two values is their mean: the frames coincide

    step, distances = secure_aggregate_round(ARRAYS, ups, "dynamic")

    assert_same_step(step, aggregate_round(ARRAYS, ups, "dynamic"))
    np.testing.assert_allclose(distances, divergences([u.mean_embedding for u in ups],
                                                      [u.std_embedding for u in ups]), rtol=1e-6)


def test_dynamic_with_more_nodes_measures_d_in_the_mean_frame():
    # Prepare: the documented difference from the clear rule, computed in the clear
    ups = updates(5, seed=3)
    means, stds = [u.mean_embedding for u in ups], [u.std_embedding for u in ups]
    d = [node_distance(m, s, np.mean(means, axis=0), np.mean(stds, axis=0)) for m, s in zip(means, stds)]
    w = dynamic_weights(d)

    # Execute
    step, distances = secure_aggregate_round(ARRAYS, ups, "dynamic")

    # Assert
    np.testing.assert_allclose(distances, d, rtol=1e-6)
    np.testing.assert_allclose(step.weights, w, rtol=1e-6)
    for a, b in zip(step.arrays, apply_updates(ARRAYS, [u.delta for u in ups], w)):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)
    np.testing.assert_allclose(step.reference, reference_vector(means, w), rtol=0, atol=TOL)
    assert not np.allclose(d, divergences(means, stds))  # the median frame would differ


def test_nodes_dropping_in_the_masked_sum_leave_the_survivors_weighted_mean():
    ups = updates(10, seed=4)
    dropped = [1, 4, 8]

    step, _ = secure_aggregate_round(ARRAYS, ups, "fedavg", dropped=dropped)

    kept = [u for i, u in enumerate(ups) if i not in dropped]
    clear = aggregate_round(ARRAYS, kept, "fedavg")
    for a, b in zip(step.arrays, clear.arrays):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)
    np.testing.assert_allclose(step.reference, clear.reference, rtol=0, atol=TOL)
    np.testing.assert_allclose(np.delete(step.weights, dropped), clear.weights, rtol=1e-9)
    assert [r is not None for r in step.reasons] == [i in dropped for i in range(10)]
    assert step.weights[dropped].sum() == 0


@pytest.mark.parametrize("rule", sorted(set(AGGREGATIONS) - set(SECURE_AGGREGATIONS)))
def test_rules_that_read_individual_updates_refuse_secure_aggregation(rule):
    with pytest.raises(ConfigError, match=f"aggregation {rule} cannot run under secure_aggregation.*masking hides"):
        FedCLConfig(aggregation=rule, secure_aggregation=True)
    with pytest.raises(ConfigError, match="use dynamic or fedavg"):
        secure_aggregate_round(ARRAYS, updates(3), rule)
