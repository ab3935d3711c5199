"""Damped statistics: both extractor paths (numba, numpy) against direct sums, a per-packet reference and hand maths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedcl.data import COLUMNS
from fedcl.traffic import LAMBDAS, FeatureExtractor, Packet, read_packets, write_synthetic_capture
from fedcl.traffic._damped import damped_scan, segment_starts
from fedcl.traffic._extractor import VAR_RTOL
from fedcl.traffic._jit import have_numba
from kitsune_reference import ReferenceExtractor  # benchmarks/, on the test path (pyproject)

COL = {name: i for i, name in enumerate(COLUMNS)}


def _direct_moments(times, values, t, lam):
    """w, mean, variance of a stream at t, summed from scratch (two-pass variance).

    Mean and variance do not depend on t (the decay cancels), so they are weighed from the
    stream's latest time, which keeps long-silent streams from underflowing. A variance
    below VAR_RTOL of the second moment is 0, as the extractor defines it.
    """
    times, values = np.asarray(times, float), np.asarray(values, float)
    if len(times) == 0:
        return 0.0, 0.0, 0.0
    k = 2.0 ** (-lam * (times.max() - times))
    mean = (k * values).sum() / k.sum()
    var = (k * (values - mean) ** 2).sum() / k.sum()
    second = (k * values**2).sum() / k.sum()
    w = k.sum() * 2.0 ** (-lam * (t - times.max()))
    return w, mean, var if var > VAR_RTOL * second else 0.0


def direct_features(packets, first_jitter_from_epoch=False):
    """All 115 features of every packet straight from the definitions, O(n²) per λ."""
    n = len(packets)
    t = np.array([p.timestamp for p in packets])
    x = np.array([p.size for p in packets], float)
    mi = [(p.src_mac, p.src_ip) for p in packets]
    h = [p.src_ip for p in packets]
    ch = [(p.src_ip, p.dst_ip) for p in packets]
    sk = [((p.src_ip, p.src_port), (p.dst_ip, p.dst_port)) for p in packets]
    out = np.zeros((n, 115))
    for li, lam in enumerate(LAMBDAS):
        for name, keys in (("MI_dir", mi), ("H", h)):
            for i in range(n):
                idx = [k for k in range(i + 1) if keys[k] == keys[i]]
                out[i, COL[f"{name}_L{lam:g}_weight"]: COL[f"{name}_L{lam:g}_weight"] + 3] = \
                    _direct_moments(t[idx], x[idx], t[i], lam)
        for name, keys in (("HH", ch), ("HpHp", sk)):
            # residual of each packet against its own direction's mean at its own time
            res = np.empty(n)
            for k in range(n):
                idx = [j for j in range(k + 1) if keys[j] == keys[k]]
                res[k] = x[k] - _direct_moments(t[idx], x[idx], t[k], lam)[1]
            for i in range(n):
                a, b = keys[i], (keys[i][1], keys[i][0])
                ia = [k for k in range(i + 1) if keys[k] == a]
                ib = [k for k in range(i + 1) if keys[k] == b and a != b]
                w_a, mu_a, var_a = _direct_moments(t[ia], x[ia], t[i], lam)
                w_b, mu_b, var_b = _direct_moments(t[ib], x[ib], t[i], lam)
                sr = 0.0
                for k in sorted(ia + ib):
                    other = b if keys[k] == a else a
                    before = [j for j in range(k) if keys[j] == other]
                    rho = res[before[-1]] if before else 0.0
                    sr += 2.0 ** (-lam * (t[i] - t[k])) * res[k] * rho
                cov = sr / (w_a + w_b)
                sd = math.sqrt(var_a * var_b)
                lo = COL[f"{name}_L{lam:g}_weight"]
                out[i, lo: lo + 7] = [w_a, mu_a, math.sqrt(var_a), math.hypot(mu_a, mu_b),
                                      math.hypot(var_a, var_b), cov, cov / sd if sd > 0 else 0.0]
                if name == "HH":
                    gap_t, gaps = [], []
                    for pos, k in enumerate(ia):
                        if pos:
                            gap_t.append(t[k]), gaps.append(t[k] - t[ia[pos - 1]])
                        elif first_jitter_from_epoch:
                            gap_t.append(t[k]), gaps.append(t[k])
                    lo = COL[f"HH_jit_L{lam:g}_weight"]
                    out[i, lo: lo + 3] = _direct_moments(gap_t, gaps, t[i], lam)
    return out


def random_packets(seed, n=120, hosts=4, start=1.5e9):
    """Packets between a few hosts, gaps from milliseconds to tens of seconds."""
    rng = np.random.default_rng(seed)
    gaps = rng.choice([1e-3, 0.05, 0.3, 1.0, 20.0], size=n) * rng.random(n)
    t = start + np.cumsum(gaps)
    packets = []
    for i in range(n):
        a, b = rng.choice(hosts, size=2, replace=rng.random() < 0.05)  # a few self-addressed
        ip = lambda h: bytes([10, 0, 0, int(h)])  # noqa: E731
        mac = bytes([2, 0, 0, 0, 0, int(a) + 10 * int(rng.random() < 0.2)])  # one IP, two MACs
        ports = rng.choice([80, 1000, -1], size=2)
        packets.append(Packet(float(t[i]), int(rng.integers(60, 1500)), mac, b"\xff" * 6, ip(a), ip(b),
                              int(ports[0]), int(ports[1])))
    return packets


def _close(actual, expected, rtol=1e-6):
    """Equal up to rounding, scaled per column (variances cancel at the second moment's scale)."""
    scale = np.abs(expected).max(axis=0, keepdims=True) + 1e-300
    err = np.abs(actual - expected) / (np.abs(expected) * rtol + scale * rtol)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() <= 1.0, (COLUMNS[worst[1]], worst[0], actual[worst], expected[worst])


# -- property tests ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lambdas", [(5.0, 0.01), (100.0, 2.0, 0.5), (1e-4,)])
def test_damped_scan_equals_direct_sums(seed, lambdas):
    # Prepare: random events on a few streams, some with stored state from an earlier chunk
    rng = np.random.default_rng(seed)
    lam = np.array(lambdas)
    m, n_streams = 300, 7
    ids = np.sort(rng.integers(0, n_streams, size=m), kind="stable")
    t = np.empty(m)
    for s in np.unique(ids):  # times increase within each stream
        sel = ids == s
        t[sel] = np.cumsum(rng.exponential(rng.choice([0.01, 1.0, 30.0]), size=sel.sum()))
    X = rng.normal(size=(m, len(lam), 2)) * rng.choice([1.0, 1e3], size=(m, 1, 1))
    past_t = -rng.exponential(5.0, size=n_streams)  # stored state: one value at past_t
    past_X = rng.normal(size=(n_streams, len(lam), 2))
    starts = segment_starts(ids)
    prev = np.empty(m)
    prev[1:] = t[:-1]
    prev[starts] = past_t[ids[starts]]
    gamma = 2.0 ** (-np.outer(t - prev, lam))

    # Execute
    S = damped_scan(starts, gamma, X, past_X[ids[starts]])

    # Assert: S_i = Σ_{k ≤ i, same stream} 2^(−λ(t_i − t_k)) X_k + 2^(−λ(t_i − past_t)) past_X
    for i in range(m):
        same = np.flatnonzero(ids[: i + 1] == ids[i])
        k = 2.0 ** (-np.outer(t[i] - t[same], lam))[:, :, None]
        expected = (k * X[same]).sum(axis=0) + 2.0 ** (-lam * (t[i] - past_t[ids[i]]))[:, None] * past_X[ids[i]]
        np.testing.assert_allclose(S[i], expected, rtol=1e-9, atol=1e-9 * np.abs(X).max())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("epoch", [False, True])
@pytest.mark.parametrize("compiled", [True, False] if have_numba() else [False])
def test_extractor_equals_direct_definition(seed, epoch, compiled):
    # Prepare
    packets = random_packets(seed)
    expected = direct_features(packets, first_jitter_from_epoch=epoch)
    extractor = FeatureExtractor(first_jitter_from_epoch=epoch, prune_below=0, compiled=compiled)
    cuts = [0, 1, 2, 17, 60, 61, len(packets)]  # state carried across uneven calls

    # Execute
    actual = np.vstack([extractor.extract(packets[a:b]) for a, b in zip(cuts, cuts[1:])])

    # Assert
    _close(actual, expected)


def test_reference_equals_direct_definition():
    packets = random_packets(11)
    _close(np.array(ReferenceExtractor().extract(packets)), direct_features(packets))


@pytest.mark.parametrize("chunk", [5000, 293])
@pytest.mark.parametrize("compiled", [True, False] if have_numba() else [False])
def test_extractor_equals_reference_on_a_capture(tmp_path, chunk, compiled):
    # Prepare: IPv4/IPv6, TCP/UDP/ICMP/ARP, replies in both directions
    write_synthetic_capture(tmp_path / "c.pcap", 3000, seed=5, n_sockets=80)
    packets = list(read_packets(tmp_path / "c.pcap"))
    extractor = FeatureExtractor(prune_below=0, compiled=compiled)

    # Execute
    actual = np.vstack([extractor.extract(packets[i: i + chunk]) for i in range(0, len(packets), chunk)])
    expected = np.array(ReferenceExtractor().extract(packets))

    # Assert
    _close(actual, expected, rtol=1e-6)
    assert (expected[:, COL["HH_L1_pcc"]] != 0).mean() > 0.2  # the 2-D statistics were exercised


# -- hand-checked examples -----------------------------------------------------------------

A, B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
MAC_A, MAC_B = b"\x02" * 6, b"\x04" * 6


def _hand_packets():
    # A:1000 → B:80 100 B at t=10, 200 B at t=11; B:80 → A:1000 50 B at t=12, 150 B at t=13
    return [Packet(10.0, 100, MAC_A, MAC_B, A, B, 1000, 80), Packet(11.0, 200, MAC_A, MAC_B, A, B, 1000, 80),
            Packet(12.0, 50, MAC_B, MAC_A, B, A, 80, 1000), Packet(13.0, 150, MAC_B, MAC_A, B, A, 80, 1000)]


def test_hand_example_one_direction():
    rows = FeatureExtractor().extract(_hand_packets())
    # λ = 1, after 100 B at t=10 and 200 B at t=11: weights 1/2 and 1
    w, mean = 1.5, (0.5 * 100 + 200) / 1.5  # 166.67
    var = (0.5 * 100**2 + 200**2) / 1.5 - mean**2  # 30000 − 27777.8 = 2222.2
    for block in ("MI_dir", "H"):
        assert rows[1, COL[f"{block}_L1_weight"]] == pytest.approx(w)
        assert rows[1, COL[f"{block}_L1_mean"]] == pytest.approx(mean)
        assert rows[1, COL[f"{block}_L1_variance"]] == pytest.approx(var)
    assert rows[1, COL["HH_L1_std"]] == pytest.approx(math.sqrt(var))
    # no reverse traffic yet: magnitude = μ_a, radius = var_a, covariance = pcc = 0
    assert rows[1, COL["HH_L1_magnitude"]] == pytest.approx(mean)
    assert rows[1, COL["HH_L1_radius"]] == pytest.approx(var)
    assert rows[1, COL["HH_L1_covariance"]] == 0 and rows[1, COL["HH_L1_pcc"]] == 0
    # λ = 5: 2^(−5) = 1/32
    assert rows[1, COL["HH_L5_weight"]] == pytest.approx(1 + 1 / 32)
    # jitter: first packet none, second a gap of 1 s
    assert rows[0, COL["HH_jit_L1_weight"]] == 0 and rows[0, COL["HH_jit_L1_mean"]] == 0
    assert rows[1, COL["HH_jit_L1_weight"]] == 1 and rows[1, COL["HH_jit_L1_mean"]] == pytest.approx(1.0)


def test_hand_example_both_directions():
    rows = FeatureExtractor().extract(_hand_packets())
    last = rows[3]
    # λ = 1 on B → A after 50 B at t=12 and 150 B at t=13
    mu_a, var_a = (0.5 * 50 + 150) / 1.5, 20000 / 9  # 116.67, 2222.2
    mu_b, var_b = (0.5 * 100 + 200) / 1.5, 20000 / 9  # A → B, unchanged since t=11
    w_a, w_b = 1.5, 1.5 * 2.0**-2  # A → B decayed over 2 s
    # residuals: t=11: 200 − 166.67 = 100/3 (no B → A residual yet: product 0);
    # t=12: 50 − 50 = 0; t=13: 150 − 116.67 = 100/3 times A → B's last residual 100/3
    sr = (100 / 3) ** 2
    cov = sr / (w_a + w_b)  # 592.6
    for block in ("HH", "HpHp"):
        assert last[COL[f"{block}_L1_weight"]] == pytest.approx(w_a)
        assert last[COL[f"{block}_L1_mean"]] == pytest.approx(mu_a)
        assert last[COL[f"{block}_L1_std"]] == pytest.approx(math.sqrt(var_a))
        assert last[COL[f"{block}_L1_magnitude"]] == pytest.approx(math.sqrt(mu_a**2 + mu_b**2))
        assert last[COL[f"{block}_L1_radius"]] == pytest.approx(math.sqrt(var_a**2 + var_b**2))
        assert last[COL[f"{block}_L1_covariance"]] == pytest.approx(cov)
        assert last[COL[f"{block}_L1_pcc"]] == pytest.approx(0.5 / 1.875)  # cov / (σ_a σ_b)
    # the first B → A packet sees the reverse direction but has a zero residual
    assert rows[2, COL["HH_L1_magnitude"]] == pytest.approx(math.sqrt(50**2 + mu_b**2))
    assert rows[2, COL["HH_L1_covariance"]] == pytest.approx(0.0, abs=1e-9)


def test_hand_example_first_jitter_from_epoch():
    rows = FeatureExtractor(first_jitter_from_epoch=True).extract(_hand_packets())
    # first gap measured from 0: 10 s; then 1 s. λ = 1: weights 1/2, 1
    assert rows[0, COL["HH_jit_L1_weight"]] == 1 and rows[0, COL["HH_jit_L1_mean"]] == 10
    assert rows[1, COL["HH_jit_L1_weight"]] == pytest.approx(1.5)
    assert rows[1, COL["HH_jit_L1_mean"]] == pytest.approx((0.5 * 10 + 1) / 1.5)  # 4
    assert rows[1, COL["HH_jit_L1_variance"]] == pytest.approx((0.5 * 100 + 1) / 1.5 - 16)  # 18
    assert rows[2, COL["HH_jit_L1_mean"]] == 12  # B → A is a new channel
