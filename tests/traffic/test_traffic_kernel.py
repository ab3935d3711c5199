"""The compiled extractor (numba, fedcl.traffic._kernel) against the numpy path it replaces, and without numba."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fedcl.data import COLUMNS
from fedcl.traffic import (CaptureReader, FeatureExtractor, Packet, pass_aligned_chunks, read_packets,
                           write_synthetic_capture)
from fedcl.traffic._jit import have_numba
from test_traffic_statistics import random_packets

pytestmark = pytest.mark.skipif(not have_numba(), reason="numba is not installed")
PCC = np.array([c.endswith("_pcc") for c in COLUMNS])


def assert_same_rows(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal to rounding: within 1e-11 of each column's largest value, pcc within 1e-7 of its own.

    The two paths add the same terms in another order (numpy's passes combine sums by recursive doubling),
    and the numpy path differs from itself by as much when the same packets come in other batches. pcc is
    cov / (σ_a σ_b) and σ may sit at the rounding floor (a variance kept just above VAR_RTOL of Σx²/w):
    rounding noise over rounding noise, values up to ~1e3, so it gets a looser bound.
    """
    assert actual.shape == expected.shape
    scale = np.abs(expected).max(axis=0) + 1e-300
    err = np.abs(actual - expected) / scale
    assert err[:, ~PCC].max() <= 1e-11, COLUMNS[int(np.argmax(err.max(axis=0) * ~PCC))]
    assert err[:, PCC].max() <= 1e-7


def backwards(packets: list[Packet], seed: int = 0) -> list[Packet]:
    """Every tenth packet stamped up to 2 s early (multi-queue capture): the extractor clamps time."""
    rng = np.random.default_rng(seed)
    return [p._replace(timestamp=p.timestamp - 2 * rng.random()) if i % 10 == 5 else p for i, p in enumerate(packets)]


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """A busy capture (IPv4/IPv6, TCP/UDP/ICMP/ARP, both directions), a sparse one whose streams are pruned
    and come back, and random packets with self-addressed channels, MACs sharing an IP and ports of -1."""
    folder = tmp_path_factory.mktemp("kernel")
    write_synthetic_capture(folder / "busy.pcap", 6000, seed=5, n_sockets=80)
    write_synthetic_capture(folder / "sparse.pcap", 1200, seed=3, n_hosts=10, n_sockets=80, rate=0.025)
    busy, sparse = list(read_packets(folder / "busy.pcap")), list(read_packets(folder / "sparse.pcap"))
    return {"busy": busy, "sparse": sparse, "backwards": backwards(busy), "random": random_packets(7, n=600)}


@pytest.mark.parametrize("epoch", [False, True])
@pytest.mark.parametrize("name", ["busy", "sparse", "backwards", "random"])
def test_compiled_rows_equal_the_numpy_path(captures, name, epoch):
    # Prepare
    packets = captures[name]

    # Execute
    compiled = FeatureExtractor(first_jitter_from_epoch=epoch, compiled=True).extract(packets)
    numpy_path = FeatureExtractor(first_jitter_from_epoch=epoch, compiled=False).extract(packets)

    # Assert
    assert_same_rows(compiled, numpy_path)
    assert (compiled[:, PCC] != 0).mean() > 0.1  # the two-way statistics were exercised


@pytest.mark.parametrize("epoch", [False, True])
def test_compiled_rows_do_not_depend_on_batching_bit_for_bit(captures, epoch):
    # Prepare: pruning passes on the sparse capture fall inside batches of every size
    packets = captures["sparse"]
    one_call = FeatureExtractor(first_jitter_from_epoch=epoch).extract(packets)

    # Execute
    uneven = FeatureExtractor(first_jitter_from_epoch=epoch)
    one_by_one = FeatureExtractor(first_jitter_from_epoch=epoch)
    batched = np.vstack([uneven.extract(packets[i: i + 37]) for i in range(0, len(packets), 37)])
    per_packet = np.array([one_by_one.update(p) for p in packets])

    # Assert: a loop in packet order has no pass boundaries, so not even rounding differs
    np.testing.assert_array_equal(batched, one_call)
    np.testing.assert_array_equal(per_packet, one_call)


def test_batches_give_the_rows_of_packet_objects(tmp_path):
    # Prepare: pruning every 5 s of capture time, so chunks end at pruning passes too
    write_synthetic_capture(tmp_path / "c.pcap", 20_000, seed=8)
    packets = list(read_packets(tmp_path / "c.pcap"))
    expected_chunks = list(pass_aligned_chunks(packets, 8192, FeatureExtractor(prune_every=5.0)))

    # Execute
    extractor = FeatureExtractor(prune_every=5.0)
    chunks = list(pass_aligned_chunks(CaptureReader(tmp_path / "c.pcap"), 8192, extractor))
    rows = np.vstack([extractor.extract(chunk) for chunk in chunks])

    # Assert: the same cuts, the same packets, the same rows
    assert [len(c) for c in chunks] == [len(c) for c in expected_chunks]
    assert any(0 < len(c) < 8192 for c in chunks[:-1])
    assert [p for c in chunks for p in c] == packets
    np.testing.assert_array_equal(rows, FeatureExtractor(prune_every=5.0).extract(packets))


def test_compiled_without_numba_is_an_error(monkeypatch):
    monkeypatch.setattr("fedcl.traffic._jit.have_numba", lambda: False)

    with pytest.raises(ValueError, match="needs numba"):
        FeatureExtractor(compiled=True).extract([])
    assert not FeatureExtractor().extract([]).shape[0]


EDGE = """
import sys
sys.modules["numba"] = None  # as on the edge install: `import numba` fails
import numpy as np
from fedcl.traffic import extract_features
from fedcl.traffic._jit import have_numba
assert not have_numba()
np.save(sys.argv[2], extract_features(sys.argv[1]).to_numpy())
assert "numba" not in {m.split(".")[0] for m, v in sys.modules.items() if v is not None}
"""


def test_edge_install_without_numba_extracts_the_same_rows(tmp_path):
    # Prepare
    write_synthetic_capture(tmp_path / "c.pcap", 3000, seed=9, n_sockets=80)

    # Execute: a fresh interpreter in which numba cannot be imported
    subprocess.run([sys.executable, "-c", EDGE, str(tmp_path / "c.pcap"), str(tmp_path / "rows.npy")], check=True,
                   timeout=300)

    # Assert
    from fedcl.traffic import extract_features

    assert_same_rows(extract_features(tmp_path / "c.pcap").to_numpy(), np.load(tmp_path / "rows.npy"))


@pytest.mark.parametrize("numba_path", [True, False])
def test_distinct_keys_partition_the_rows(monkeypatch, numba_path):
    # Prepare: 24-byte address rows (as stream_ids packs them) and int64 codes, many repeated
    from fedcl.traffic._streams import _unique

    if not numba_path:
        monkeypatch.setattr("fedcl.traffic._jit.have_numba", lambda: False)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 3, size=(5000, 24), dtype=np.uint8)
    rows[:, 2:] = 0  # 9 distinct rows
    codes = rng.integers(-1, 40, size=5000)

    for values in (rows, codes):
        # Execute
        some, inverse = _unique(values)

        # Assert: each row is numbered by a distinct row equal to it, and no two are equal
        np.testing.assert_array_equal(values[some][inverse], values)
        assert len(some) == len(np.unique(values, axis=0))
