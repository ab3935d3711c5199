"""FeatureExtractor: column layout, the epoch-jitter flag, bounded memory, extract_features."""

from __future__ import annotations

import numpy as np

from fedcl.data import COLUMNS
from fedcl.traffic import LAMBDAS, FeatureExtractor, Packet, extract_features, read_packets, write_synthetic_capture

JIT = np.array([c.startswith("HH_jit_") for c in COLUMNS])


def test_column_names_are_the_nbaiot_columns(tmp_path):
    write_synthetic_capture(tmp_path / "c.pcap", 100, seed=0)

    df = extract_features(tmp_path / "c.pcap")

    assert tuple(df.columns) == COLUMNS and df.shape == (100, 115)
    assert np.isfinite(df.to_numpy()).all()
    assert [f"L{lam:g}" for lam in LAMBDAS] == [c.split("_")[2] for c in COLUMNS[:15:3]]


def test_epoch_flag_changes_only_jitter_and_leaks_the_clock_on_first_packets(tmp_path):
    # Prepare
    write_synthetic_capture(tmp_path / "c.pcap", 2000, seed=2)
    packets = list(read_packets(tmp_path / "c.pcap"))
    seen, first = set(), []
    for p in packets:
        first.append((p.src_ip, p.dst_ip) not in seen)
        seen.add((p.src_ip, p.dst_ip))
    first = np.array(first)
    t = np.array([p.timestamp for p in packets])

    # Execute
    plain = FeatureExtractor().extract(packets)
    epoch = FeatureExtractor(first_jitter_from_epoch=True).extract(packets)

    # Assert
    np.testing.assert_array_equal(plain[:, ~JIT], epoch[:, ~JIT])
    means = [COLUMNS.index(f"HH_jit_L{lam:g}_mean") for lam in LAMBDAS]
    weights = [COLUMNS.index(f"HH_jit_L{lam:g}_weight") for lam in LAMBDAS]
    assert first.sum() > 10
    np.testing.assert_array_equal(epoch[first][:, means], np.repeat(t[first, None], 5, axis=1))
    assert (epoch[first][:, weights] == 1).all()
    assert (plain[first][:, means] == 0).all() and (plain[first][:, weights] == 0).all()
    assert (plain[~first][:, means] < 1e6).all()  # real gaps only, no clock


def _short_lived(n_channels, per_channel=4, gap=2.0):
    """Each channel (and its source host) sends a few packets, then is never seen again."""
    packets, t = [], 1.5e9
    for c in range(n_channels):
        src = (c + 1).to_bytes(4, "big")
        for _ in range(per_channel):
            t += gap
            packets.append(Packet(t, 100 + c % 50, b"\x02\x00" + src, b"\x02" * 6, src, b"\x0a\x00\x00\x01", 5000, 80))
    return packets


def test_pruning_bounds_live_streams_without_changing_features():
    # Prepare: 3000 channels over 24000 s; a single packet needs ~2000 s to decay below 1e-6
    packets = _short_lived(3000)
    pruned, kept = FeatureExtractor(), FeatureExtractor(prune_below=0)
    live_pruned, live_kept, rows_pruned, rows_kept = [], [], [], []

    # Execute
    for i in range(0, len(packets), 500):
        rows_pruned.append(pruned.extract(packets[i: i + 500]))
        rows_kept.append(kept.extract(packets[i: i + 500]))
        live_pruned.append(pruned.n_live_streams)
        live_kept.append(kept.n_live_streams)

    # Assert: ~ (2000 + 60) s / 8 s per channel ≈ 260 channels alive, 6 tables each
    assert max(live_pruned) < 6 * 320
    assert live_kept[-1] == 6 * 3000  # without pruning every stream stays
    np.testing.assert_allclose(np.vstack(rows_pruned), np.vstack(rows_kept), rtol=1e-12)


def test_pruned_channel_starts_afresh():
    a = Packet(1.5e9, 100, b"\x02" * 6, b"\x04" * 6, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 1, 2)
    later = a._replace(timestamp=a.timestamp + 10_000)
    extractor = FeatureExtractor()

    extractor.extract([a, a._replace(timestamp=a.timestamp + 1)])
    extractor.extract([a._replace(timestamp=a.timestamp + 5_000, src_ip=b"\x0a\x00\x00\x09")])  # triggers pruning
    row = extractor.update(later)

    assert row[COLUMNS.index("HH_L0.01_weight")] == 1.0  # the old channel was forgotten
    assert row[COLUMNS.index("HH_jit_L0.01_weight")] == 0.0  # so this is its first packet again
