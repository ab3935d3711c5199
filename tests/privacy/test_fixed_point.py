"""Tests for the fixed-point ring encoding of secure aggregation."""

import numpy as np
import pytest

from fedcl.privacy import CLIP, SCALE_BITS, decode, encode, max_error


def test_round_trip_error_is_at_most_half_a_step():
    x = np.random.default_rng(0).normal(scale=100, size=10_000)

    err = np.abs(decode(encode(x)) - x)

    assert err.max() <= 2.0 ** -(SCALE_BITS + 1)
    assert err.max() > 0  # the test can see quantisation at all


def test_a_wrapping_sum_of_negative_and_positive_values_decodes_exactly():
    rng = np.random.default_rng(1)
    xs = [rng.uniform(-CLIP, CLIP, size=1000) for _ in range(50)]

    total = np.sum([encode(x) for x in xs], axis=0, dtype=np.uint64)  # wraps mod 2^64

    np.testing.assert_allclose(decode(total), np.sum(xs, axis=0), rtol=0, atol=max_error(50) + 1e-9)


def test_values_outside_the_range_are_clipped_and_non_finite_ones_refused():
    np.testing.assert_array_equal(decode(encode(np.array([1e9, -1e9]))), [CLIP, -CLIP])
    with pytest.raises(ValueError, match="finite"):
        encode(np.array([0.0, np.nan]))
