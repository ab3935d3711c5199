"""Few-bit updates on the wire: quantisation bounds, error feedback, and the in-process runner with it."""

from __future__ import annotations

import numpy as np
import pytest

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.federated import run_federation
from fedcl.federated.compress import (
    BLOCK,
    Broadcast,
    Packed,
    applied,
    compress,
    dequantise,
    flatten,
    quantise,
    unflatten,
)
from fedcl.pipeline import load_splits, scaled_training_rows


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_each_value_is_within_half_a_step_of_its_block_scale(bits):
    # Prepare: blocks whose magnitudes differ by orders, and a length that is not a multiple of BLOCK
    rng = np.random.default_rng(bits)
    x = (rng.normal(size=1000) * np.repeat(10.0 ** rng.uniform(-6, 1, size=16), BLOCK)[:1000]).astype(np.float32)

    # Execute
    packed = quantise(x, bits)
    decoded = dequantise(packed)

    # Assert: |x − Q(x)| ≤ scale/2 per block, the block's largest value exact up to float rounding, bits packed
    scale = np.repeat(packed.scales, BLOCK)[:1000]
    assert np.all(np.abs(x - decoded) <= scale / 2 * (1 + 1e-6))
    biggest = np.abs(x[:BLOCK]).argmax()
    assert decoded[biggest] == pytest.approx(x[biggest], rel=1e-6)
    assert packed.codes.nbytes == -(-1000 * bits // 8)
    assert packed.nbytes < x.nbytes * (bits + 1) / 32


def test_zeros_and_a_block_of_zeros_decode_to_zeros():
    x = np.zeros(3 * BLOCK, dtype=np.float32)
    x[BLOCK:2 * BLOCK] = np.linspace(-1, 1, BLOCK)

    decoded = dequantise(quantise(x, 4))

    assert np.all(decoded[:BLOCK] == 0) and np.all(decoded[2 * BLOCK:] == 0)


def test_error_feedback_sends_over_rounds_what_one_round_rounds_away():
    # Prepare: the same small update every round, far below one 2-bit step of its block's scale
    x = np.full(BLOCK, 0.01, dtype=np.float32)
    x[0] = 1.0  # sets the block's scale: 0.01 rounds to 0 in one round

    # Execute
    residual, sent = None, np.zeros(BLOCK, dtype=np.float32)
    for _ in range(200):
        _, decoded, residual = compress(x, residual, 2)
        sent += decoded

    # Assert: without feedback the small values would never leave; with it their sum arrives
    assert dequantise(quantise(x, 2))[1] == 0
    np.testing.assert_allclose(sent, 200 * x, atol=0.5 + 1e-4)  # off by the residual: ≤ half a step
    assert np.abs(residual).max() <= 0.5 + 1e-6


def test_the_broadcast_moves_what_nodes_hold_toward_the_servers_model():
    # Prepare
    rng = np.random.default_rng(0)
    like = [rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    theta = [a + rng.normal(scale=0.1, size=a.shape).astype(np.float32) for a in like]
    broadcast = Broadcast(like, bits=4)

    # Execute: the node applies each packed delta to what it holds
    held = like
    gaps = []
    for _ in range(6):
        held = applied(held, broadcast.step(theta))
        gaps.append(float(np.abs(flatten(theta) - flatten(held)).max()))

    # Assert: the gap to θ shrinks by the quantiser's factor each time, in the arrays' own dtype
    assert gaps[-1] < 1e-6 < gaps[0]
    assert all(a.dtype == np.float32 for a in held)
    assert [a.shape for a in unflatten(flatten(held), like)] == [(8, 5), (5,)]


def test_malformed_packed_updates_and_non_finite_values_are_refused():
    packed = quantise(np.linspace(-1, 1, 100), 4)
    good = [packed.codes, packed.scales]
    assert np.array_equal(dequantise(Packed.from_wire(good, 4, 100)), dequantise(packed))
    for arrays in ([packed.codes[:-1], packed.scales], [packed.codes.astype(np.int8), packed.scales],
                   [packed.codes, packed.scales[:1]], [packed.codes, np.full_like(packed.scales, np.nan)], [packed.codes]):
        with pytest.raises(ValueError, match="packed"):
            Packed.from_wire(arrays, 4, 100)
    with pytest.raises(ValueError, match="non-finite"):
        quantise(np.array([0.0, np.nan]), 4)


def test_compression_refuses_secure_aggregation_and_odd_widths():
    with pytest.raises(ConfigError, match="secure_aggregation"):
        FedCLConfig(compression_bits=4, secure_aggregation=True, aggregation="dynamic")
    for bits in (1, 9, -1):
        with pytest.raises(ConfigError, match="compression_bits"):
            FedCLConfig(compression_bits=bits)


def test_four_bit_federation_trains_close_to_the_float32_one(fedmse_slice):
    # Prepare
    config = FedCLConfig(data=str(fedmse_slice), rounds=4, seed=1)
    rows = {s.name: scaled_training_rows(s) for s in load_splits(config)}

    # Execute
    exact = run_federation(rows, config)
    four = run_federation(rows, config.updated(compression_bits=4))

    # Assert: a different run (rounding changed θ) that stays near the float32 one and trains as well
    gap = np.abs(flatten(exact.arrays) - flatten(four.arrays))
    moved = np.abs(flatten(exact.arrays) - flatten(run_federation(rows, config.updated(rounds=1)).arrays))
    assert 0 < gap.max() and np.median(gap) < 0.1 * np.median(moved)
    assert four.history[-1]["loss"] == pytest.approx(exact.history[-1]["loss"], rel=0.05)


def test_a_federation_of_one_node_sends_nothing_so_compresses_nothing(fedmse_slice):
    # A node's own encoder (personalisation) trains as a one-node federation: it never leaves the node
    config = FedCLConfig(data=str(fedmse_slice), rounds=2, seed=1)
    rows = {s.name: scaled_training_rows(s) for s in load_splits(config)[:1]}

    exact = run_federation(rows, config)
    four = run_federation(rows, config.updated(compression_bits=4))

    assert all(np.array_equal(a, b) for a, b in zip(exact.arrays, four.arrays))
