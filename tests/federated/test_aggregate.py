"""Tests for the server-side numpy maths."""

import numpy as np
import pytest

from fedcl.federated import apply_updates, dynamic_weights, reference_vector, sample_weights


def test_dynamic_weights_by_hand():
    # raw 1/(1+d) = [1, 1/2, 1/4]; sum = 7/4
    weights = dynamic_weights([0.0, 1.0, 3.0])

    np.testing.assert_allclose(weights, [4 / 7, 2 / 7, 1 / 7])


def test_dynamic_weights_formula_on_random_distances():
    d = np.random.default_rng(0).exponential(size=6)

    weights = dynamic_weights(d)

    raw = 1 / (1 + d)
    np.testing.assert_allclose(weights, raw / raw.sum())
    assert weights.sum() == pytest.approx(1.0)


def test_larger_distance_gets_smaller_weight():
    d = np.array([0.3, 2.0, 0.1, 5.0])

    weights = dynamic_weights(d)

    order = np.argsort(d)
    assert np.all(np.diff(weights[order]) < 0)


def test_equal_distances_give_equal_weights():
    np.testing.assert_allclose(dynamic_weights([2.5, 2.5, 2.5, 2.5]), [0.25] * 4)


def test_sample_weights_proportional_to_counts():
    weights = sample_weights([10, 30, 60])

    np.testing.assert_allclose(weights, [0.1, 0.3, 0.6])


def test_apply_updates_by_hand():
    theta = [np.array([1.0, 2.0], dtype=np.float32), np.array([[0.0]], dtype=np.float64)]
    deltas = [
        [np.array([1.0, 0.0]), np.array([[4.0]])],
        [np.array([3.0, -2.0]), np.array([[-4.0]])],
    ]
    weights = [1.0, 3.0]  # not normalised: apply_updates divides by Σ w

    new = apply_updates(theta, deltas, weights)

    # θ + (1·Δ1 + 3·Δ2) / 4
    np.testing.assert_allclose(new[0], [1 + (1 + 9) / 4, 2 + (0 - 6) / 4])
    np.testing.assert_allclose(new[1], [[0 + (4 - 12) / 4]])
    assert new[0].dtype == np.float32 and new[1].dtype == np.float64
    assert new[1].shape == (1, 1)


def test_apply_updates_does_not_modify_inputs():
    theta = [np.array([1.0, 2.0])]
    deltas = [[np.array([1.0, 1.0])]]

    apply_updates(theta, deltas, [1.0])

    np.testing.assert_array_equal(theta[0], [1.0, 2.0])


def test_apply_updates_keeps_integer_dtype():
    theta = [np.array([10, 20], dtype=np.int64)]
    deltas = [[np.array([2, 4], dtype=np.int64)], [np.array([4, 8], dtype=np.int64)]]

    new = apply_updates(theta, deltas, [0.5, 0.5])

    assert new[0].dtype == np.int64
    np.testing.assert_array_equal(new[0], [13, 26])


def test_reference_vector_is_weighted_mean():
    means = [np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([3.0, 3.0])]

    g = reference_vector(means, [2.0, 1.0, 1.0])

    np.testing.assert_allclose(g, [(2 + 0 + 3) / 4, (0 + 2 + 3) / 4])
    assert g.shape == (2,)


@pytest.mark.parametrize("weights", [[1.0, -0.5], [1.0, np.nan], [0.0, 0.0], [1.0, np.inf], []])
def test_bad_weights_raise(weights):
    deltas = [[np.zeros(2)], [np.zeros(2)]]

    with pytest.raises(ValueError):
        apply_updates([np.zeros(2)], deltas, weights)
    with pytest.raises(ValueError):
        reference_vector([np.zeros(2), np.zeros(2)], weights)


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 updates but 3 weights"):
        apply_updates([np.zeros(2)], [[np.zeros(2)], [np.zeros(2)]], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="2 means but 1 weights"):
        reference_vector([np.zeros(2), np.zeros(2)], [1.0])


@pytest.mark.parametrize("distances", [[-1.0, 0.0], [np.nan, 1.0], [np.inf, 1.0], []])
def test_bad_distances_raise(distances):
    with pytest.raises(ValueError):
        dynamic_weights(distances)


@pytest.mark.parametrize("counts", [[0, 0], [-3, 5], [], [[1, 2]]])
def test_bad_counts_raise(counts):
    with pytest.raises(ValueError):
        sample_weights(counts)


def test_apply_updates_rejects_mismatched_shapes_and_rounds_integers():
    theta = [np.zeros(3), np.array([4], dtype=np.int64)]
    with pytest.raises(ValueError, match="same shapes"):
        apply_updates(theta, [[np.zeros((3, 3)), np.array([1])]], [1.0])
    with pytest.raises(ValueError, match="same shapes"):
        apply_updates(theta, [[np.zeros(3)]], [1.0])
    out = apply_updates(theta, [[np.zeros(3), np.array([1])], [np.zeros(3), np.array([2])]], [0.3, 0.7])
    assert out[1].dtype == np.int64 and out[1][0] == 6  # 4 + 0.3·1 + 0.7·2 = 5.7 -> 6
