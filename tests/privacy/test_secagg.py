"""Tests for the masking protocol: exact sums, dropout recovery, and what the server cannot learn."""

import numpy as np
import pytest
from scipy import stats

from fedcl.privacy import Node, Server, decode, encode, max_error, secure_sum
from fedcl.privacy.secagg import _combine, _pair_seed, _prg


def inputs(n: int, dim: int = 500, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.normal(scale=10.0 ** rng.integers(-4, 2), size=dim) for i in range(1, n + 1)}


def test_masked_sum_of_ten_nodes_equals_the_clear_sum_within_quantisation():
    vectors = inputs(10)

    result = secure_sum(vectors)

    assert result.survivors == list(range(1, 11))
    np.testing.assert_allclose(result.total, np.sum(list(vectors.values()), axis=0), rtol=0, atol=max_error(10))


def test_thirty_percent_dropping_after_key_sharing_still_gives_the_survivors_sum():
    vectors = inputs(10, seed=1)
    dropped = {2, 5, 9}

    result = secure_sum(vectors, dropped=dropped)

    assert result.survivors == [i for i in vectors if i not in dropped]
    expected = np.sum([vectors[i] for i in result.survivors], axis=0)
    np.testing.assert_allclose(result.total, expected, rtol=0, atol=max_error(7))
    # Without the recovery step the dropped nodes' pairwise masks would still be in the sum.
    raw = decode(np.sum(np.stack(list(result.server.masked.values())), axis=0, dtype=np.uint64))
    assert np.abs(raw - expected).max() > 1e3


def test_too_many_dropouts_abort_the_round():
    with pytest.raises(ValueError, match="fewer than the threshold 6"):
        secure_sum(inputs(10), dropped={1, 2, 3, 4, 5})


def test_a_masked_vector_is_uniform_in_the_ring_and_uncorrelated_with_its_input():
    # Prepare: node 1's input is a ramp, strongly structured
    dim = 20_000
    x = np.linspace(-1, 1, dim)
    vectors = {1: x, **{i: np.zeros(dim) for i in (2, 3, 4)}}

    # Execute
    seen = secure_sum(vectors).server.masked[1]  # what the server received from node 1

    # Assert: the top 4 bits of every word are uniform, and nothing of the ramp shows
    top = (seen >> np.uint64(60)).astype(int)
    assert stats.chisquare(np.bincount(top, minlength=16)).pvalue > 1e-3
    assert abs(np.corrcoef(seen.view(np.int64).astype(float), x)[0, 1]) < 0.05
    # The same statistics on the unmasked encoding do see the input: the test can fail.
    assert abs(np.corrcoef(encode(x).view(np.int64).astype(float), x)[0, 1]) > 0.99


def run_to_masked_input(n: int, threshold: int, dim: int = 1000):
    """Steps 0-2 with explicit parties: the nodes, the server and the masked vectors it got."""
    vectors = inputs(n, dim=dim, seed=2)
    nodes = {i: Node(i, v) for i, v in vectors.items()}
    server = Server(threshold)
    keys = server.collect_keys({i: node.advertise_keys() for i, node in nodes.items()})
    inbox = server.route({i: node.share_keys(keys, server.threshold) for i, node in nodes.items()})
    return vectors, nodes, server, inbox


def test_fewer_than_threshold_shares_give_a_wrong_secret_and_the_server_refuses_to_unmask():
    # Prepare
    vectors, nodes, server, inbox = run_to_masked_input(5, threshold=3)
    survivors = server.collect_masked({i: nodes[i].masked_input(inbox[i]) for i in nodes})
    shares = {i: nodes[i].unmasking_shares(survivors) for i in survivors}
    index = {i: i for i in nodes}  # Shamir index of holder i (ids 1..5 in order)

    # Execute: rebuild node 1's self-mask seed from t − 1 and from t of the shares of it
    too_few = _combine([(index[v], shares[v][1]) for v in (2, 3)])
    enough = _combine([(index[v], shares[v][1]) for v in (2, 3, 4)])

    # Assert
    assert too_few != nodes[1]._b
    assert enough == nodes[1]._b
    with pytest.raises(ValueError, match="fewer than the threshold"):
        server.unmask({v: shares[v] for v in (2, 3)})


def test_a_node_never_gives_shares_of_both_secrets_of_a_peer():
    _, nodes, server, inbox = run_to_masked_input(4, threshold=3)
    nodes[1].masked_input(inbox[1])

    nodes[1].unmasking_shares([1, 2, 3, 4])  # node 4 survived: a share of its self-mask seed

    with pytest.raises(ValueError, match="both secrets of node 4"):
        nodes[1].unmasking_shares([1, 2, 3])  # now "node 4 dropped": a share of its mask key too


def test_a_node_declared_dropped_stays_masked_when_its_vector_arrives_late():
    # Prepare: the server says node 4 dropped and learns its pairwise key from the others
    vectors, nodes, server, inbox = run_to_masked_input(4, threshold=3, dim=5000)
    survivors = server.collect_masked({i: nodes[i].masked_input(inbox[i]) for i in (1, 2, 3)})
    shares = {i: nodes[i].unmasking_shares(survivors) for i in survivors}
    np.testing.assert_allclose(server.unmask(shares), sum(vectors[i] for i in (1, 2, 3)), atol=max_error(3))
    key4 = _combine([(v, shares[v][4]) for v in (1, 2, 3)])

    # Execute: node 4's vector arrives after all; the server strips every pairwise mask it can
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    late = nodes[4].masked_input(inbox[4])
    s4 = X25519PrivateKey.from_private_bytes(key4)
    for v in (1, 2, 3):
        late = late + _prg(_pair_seed(s4, server.keys[v][1]), len(late))  # node 4 (higher id) subtracted them

    # Assert: what is left is x_4 + PRG(b_4), still uncorrelated with x_4
    assert np.array_equal(late, encode(vectors[4]) + _prg(nodes[4]._b, len(late)))
    assert abs(np.corrcoef(late.view(np.int64).astype(float), vectors[4])[0, 1]) < 0.05
