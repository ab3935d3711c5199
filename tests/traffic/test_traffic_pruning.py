"""Pruning idle streams: on capture time whatever the batching, and what a returning channel measures."""

from __future__ import annotations

import numpy as np
import pytest

from fedcl.data import COLUMNS
from fedcl.traffic import LAMBDAS, FeatureExtractor, Packet, read_packets, write_synthetic_capture
from kitsune_reference import ReferenceExtractor  # benchmarks/, on the test path (pyproject)

JIT_MEAN = [COLUMNS.index(f"HH_jit_L{lam:g}_mean") for lam in LAMBDAS]
JIT_WEIGHT = [COLUMNS.index(f"HH_jit_L{lam:g}_weight") for lam in LAMBDAS]
JIT_VARIANCE = [COLUMNS.index(f"HH_jit_L{lam:g}_variance") for lam in LAMBDAS]


@pytest.fixture(scope="module")
def sparse_capture(tmp_path_factory):
    """1,200 packets over ~13 hours of capture: light flows sit idle far beyond the pruning horizon
    (a single packet decays below 1e-6 at λ = 0.01 in ~33 minutes), then speak again."""
    path = tmp_path_factory.mktemp("pruning") / "sparse.pcap"
    write_synthetic_capture(path, 1200, seed=3, n_hosts=10, n_sockets=80, rate=0.025)
    return list(read_packets(path))


def in_batches(extractor: FeatureExtractor, packets: list[Packet], size: int) -> np.ndarray:
    return np.vstack([extractor.extract(packets[i : i + size]) for i in range(0, len(packets), size)])


def channel_gaps(packets: list[Packet]) -> np.ndarray:
    """Seconds since the previous packet of the same channel (src IP → dst IP); NaN for its first packet."""
    last, gaps = {}, []
    for p in packets:
        key = (p.src_ip, p.dst_ip)
        gaps.append(p.timestamp - last.get(key, np.nan))
        last[key] = p.timestamp
    return np.array(gaps)


@pytest.mark.parametrize("epoch", [False, True])
def test_rows_do_not_depend_on_batching(sparse_capture, epoch):
    # Prepare
    packets = sparse_capture

    # Execute
    one_call = FeatureExtractor(first_jitter_from_epoch=epoch).extract(packets)
    batches = in_batches(FeatureExtractor(first_jitter_from_epoch=epoch), packets, 1000)
    uneven = in_batches(FeatureExtractor(first_jitter_from_epoch=epoch), packets, 37)
    one_by_one = FeatureExtractor(first_jitter_from_epoch=epoch)
    per_packet = np.array([one_by_one.update(p) for p in packets])

    # Assert: the same rows, and pruning did happen (rows differ from never pruning)
    for rows in (batches, uneven, per_packet):
        np.testing.assert_allclose(rows, one_call, rtol=1e-9, atol=1e-9)
    never = FeatureExtractor(first_jitter_from_epoch=epoch, prune_below=0).extract(packets)
    assert not np.allclose(one_call, never, rtol=1e-6)


def test_returning_channel_measures_its_gap_with_the_epoch_flag(sparse_capture):
    # Prepare
    packets = sparse_capture
    gaps = channel_gaps(packets)
    first = np.isnan(gaps)

    # Execute
    rows = in_batches(FeatureExtractor(first_jitter_from_epoch=True), packets, 100)
    never = np.array(ReferenceExtractor(first_jitter_from_epoch=True).extract(packets))  # never prunes

    # Assert: the clock (~1.5e9 s) on a channel's first packet; a returning channel measures the gap
    # since its last packet, as the original (which never forgets) does, not the clock again
    mean = rows[:, JIT_MEAN]
    assert (mean[first] > 1e9).all()
    returned = ~first & (rows[:, JIT_WEIGHT[-1]] == 1.0)  # weight exactly 1: the channel was forgotten
    assert returned.sum() > 10
    assert (gaps[returned] > 1800).all()  # idle past the pruning horizon
    np.testing.assert_allclose(mean[returned], np.repeat(gaps[returned, None], len(LAMBDAS), axis=1), rtol=1e-12)
    assert (rows[returned][:, JIT_VARIANCE] == 0).all()
    # λ = 5, 3, 1: the forgotten past weighs nothing there, so the reference agrees to rounding
    fast = [COLUMNS.index(f"HH_jit_L{lam:g}_{s}") for lam in (5, 3, 1) for s in ("weight", "mean", "variance")]
    np.testing.assert_allclose(rows[returned][:, fast], never[returned][:, fast], rtol=1e-9)


def test_returning_channel_restarts_without_the_epoch_flag(sparse_capture):
    rows = in_batches(FeatureExtractor(), sparse_capture, 100)
    first = np.isnan(channel_gaps(sparse_capture))

    restarted = ~first & (rows[:, COLUMNS.index("HH_L0.01_weight")] == 1.0)

    assert restarted.sum() > 10
    assert (rows[restarted][:, JIT_WEIGHT] == 0).all() and (rows[restarted][:, JIT_MEAN] == 0).all()
