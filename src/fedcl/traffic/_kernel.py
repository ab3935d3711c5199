"""The extractor's loops, compiled by numba: the damped statistics of packets one after another, and the
distinct stream keys of a batch.

The same arithmetic as :mod:`fedcl.traffic._extractor` defines and its numpy path computes in
vectorised passes, written as the per-packet loop AfterImage is: each packet decays its streams'
sums (weight, Σx, Σx², per λ) since their last packet, adds itself, and reads its features. A loop
in order has no pass boundaries, so its rows do not depend on how the packets are split into calls.
Streams are integer ids (:mod:`fedcl.traffic._streams`); their state lives in the tables' arrays,
updated in place. Imported only when numba is installed (:func:`fedcl.traffic._jit.have_numba`).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

__all__ = ["damped_rows", "distinct_rows"]


def _distinct_rows(words):
    """Open addressing over a table of twice as many slots as rows: hash a row, probe until its own
    row or an empty slot."""
    n, width = words.shape
    size = 2
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    slot_row = np.full(size, -1, np.int64)  # the first row holding the key in this slot
    slot_id = np.empty(size, np.int64)
    first = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        h = np.uint64(0x9E3779B97F4A7C15)
        for j in range(width):
            h = (h ^ words[i, j]) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
        pos = np.int64(h & mask)
        while True:
            r = slot_row[pos]
            if r < 0:
                slot_row[pos], slot_id[pos], first[k], inverse[i] = i, k, i, k
                k += 1
                break
            same = True
            for j in range(width):
                if words[r, j] != words[i, j]:
                    same = False
                    break
            if same:
                inverse[i] = slot_id[pos]
                break
            pos = (pos + 1) & (size - 1)
    return first[:k], inverse


_distinct_rows = jit(_distinct_rows)


def distinct_rows(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each distinct row of ``words`` (n, w) uint64, in order of appearance, and each row's
    number among them: ``np.unique(..., axis=0, return_index=True, return_inverse=True)`` in one pass
    instead of a sort, with distinct rows numbered by first appearance instead of sorted."""
    return _distinct_rows(np.ascontiguousarray(words))


def _moments(s0: float, s1: float, s2: float, var_rtol: float) -> tuple[float, float, float]:
    """Weight, mean, variance from (w, Σx, Σx²); a variance below ``var_rtol`` of Σx²/w is 0."""
    inv = 1.0 / s0 if s0 > 0 else 0.0
    mean = s1 * inv
    second = s2 * inv
    var = second - mean * mean
    return s0, mean, var if var > var_rtol * second else 0.0


def _one_d(out, i, col, lam, var_rtol, t, x, last_t, sums, s):
    """MI_dir / H: stream ``s`` adds size ``x`` at time ``t``; its 15 columns from ``col``."""
    prev = last_t[s]
    gap = 0.0 if math.isnan(prev) else t - prev
    for k in range(lam.shape[0]):
        g = np.exp2(-gap * lam[k])
        s0 = sums[s, k, 0] * g + 1.0
        s1 = sums[s, k, 1] * g + x
        s2 = sums[s, k, 2] * g + x * x
        sums[s, k, 0], sums[s, k, 1], sums[s, k, 2] = s0, s1, s2
        out[i, col + 3 * k], out[i, col + 3 * k + 1], out[i, col + 3 * k + 2] = _moments(s0, s1, s2, var_rtol)
    last_t[s] = t


def _two_d(out, i, col, jit_col, lam, var_rtol, epoch, t, x, last_t, sums, res, pair, direction,
           pair_t, sr, chan, s):
    """HH / HpHp (and HH_jit when ``jit_col`` ≥ 0): directed stream ``s`` adds size ``x`` at ``t``."""
    prev = last_t[s]
    new = math.isnan(prev)
    gap = 0.0 if new else t - prev
    # jitter: a first packet adds no inter-arrival, or (epoch) the time since 0
    has = 1.0 if (epoch or not new) else 0.0
    jg = (t if epoch else 0.0) if new else t - prev
    p = pair[s]
    b = chan[p, 1 - direction[s]]  # the reverse direction, -1 if it has no stream
    tb = last_t[b] if b >= 0 else np.nan
    pprev = pair_t[p]
    pgap = 0.0 if math.isnan(pprev) else t - pprev
    for k in range(lam.shape[0]):
        g = np.exp2(-gap * lam[k])
        s0 = sums[s, k, 0] * g + 1.0
        s1 = sums[s, k, 1] * g + x
        s2 = sums[s, k, 2] * g + x * x
        sums[s, k, 0], sums[s, k, 1], sums[s, k, 2] = s0, s1, s2
        w_a, mu_a, var_a = _moments(s0, s1, s2, var_rtol)
        if jit_col >= 0:
            j0 = sums[s, k, 3] * g + has
            j1 = sums[s, k, 4] * g + jg
            j2 = sums[s, k, 5] * g + jg * jg
            sums[s, k, 3], sums[s, k, 4], sums[s, k, 5] = j0, j1, j2
            c = jit_col + 3 * k
            out[i, c], out[i, c + 1], out[i, c + 2] = _moments(j0, j1, j2, var_rtol)
        r = x - mu_a  # this packet's residual against its own direction
        if b >= 0:
            # the reverse direction as its last packet left it; its weight decayed to now
            _, mu_b, var_b = _moments(sums[b, k, 0], sums[b, k, 1], sums[b, k, 2], var_rtol)
            w_b = 0.0 if math.isnan(tb) else sums[b, k, 0] * np.exp2(-(t - tb) * lam[k])
            rho = res[b, k]
        else:
            mu_b, var_b, w_b, rho = 0.0, 0.0, 0.0, 0.0
        res[s, k] = r
        srk = sr[p, k] * np.exp2(-pgap * lam[k]) + r * rho
        sr[p, k] = srk
        cov = srk / (w_a + w_b)
        sd_a, sd_b = math.sqrt(var_a), math.sqrt(var_b)
        denom = sd_a * sd_b
        c = col + 7 * k
        out[i, c], out[i, c + 1], out[i, c + 2] = w_a, mu_a, sd_a
        out[i, c + 3] = math.sqrt(mu_a * mu_a + mu_b * mu_b)
        out[i, c + 4] = math.sqrt(var_a * var_a + var_b * var_b)
        out[i, c + 5] = cov
        out[i, c + 6] = cov / denom if denom > 0 else 0.0
    last_t[s] = t
    pair_t[p] = t


_moments = jit(_moments)  # compiled before the loop that calls them
_one_d = jit(_one_d)
_two_d = jit(_two_d)


def _damped_rows(out, t, x, lam, var_rtol, epoch,
                 mi, mi_t, mi_sums, h, h_t, h_sums,
                 ch, ch_t, ch_sums, ch_res, ch_pair, ch_dir, ch_pair_t, ch_sr, ch_chan,
                 sk, sk_t, sk_sums, sk_res, sk_pair, sk_dir, sk_pair_t, sk_sr, sk_chan):
    """Each packet in order; columns: MI_dir 0-14, H 15-29, HH 30-64, HH_jit 65-79, HpHp 80-114."""
    for i in range(t.shape[0]):
        _one_d(out, i, 0, lam, var_rtol, t[i], x[i], mi_t, mi_sums, mi[i])
        _one_d(out, i, 15, lam, var_rtol, t[i], x[i], h_t, h_sums, h[i])
        _two_d(out, i, 30, 65, lam, var_rtol, epoch, t[i], x[i], ch_t, ch_sums, ch_res, ch_pair, ch_dir,
               ch_pair_t, ch_sr, ch_chan, ch[i])
        _two_d(out, i, 80, -1, lam, var_rtol, epoch, t[i], x[i], sk_t, sk_sums, sk_res, sk_pair, sk_dir,
               sk_pair_t, sk_sr, sk_chan, sk[i])


_damped_rows = jit(_damped_rows)


def damped_rows(out: np.ndarray, t: np.ndarray, x: np.ndarray, lam: np.ndarray, var_rtol: float, epoch: bool,
                ids: tuple[np.ndarray, ...], tables: tuple) -> None:
    """Fill ``out`` (m, 115) with the features of m packets, updating the tables' state in place.

    Parameters
    ----------
    out : ndarray, shape (m, 115)
        Rows to write, in N-BaIoT column order.
    t, x : ndarray, shape (m,)
        Capture times (never decreasing) and wire sizes.
    lam : ndarray, shape (L,)
        Decay factors.
    var_rtol : float
        A variance below this fraction of Σx²/w is 0.
    epoch : bool
        A channel's first inter-arrival is its time since 0 (weight 1) instead of none.
    ids : tuple of 4 ndarrays of int64, shape (m,)
        Each packet's MI_dir, H, channel and socket-pair stream.
    tables : tuple
        The four stream tables of those ids (``_Table``, ``_Table``, ``_Directed``, ``_Directed``).
    """
    mi, h, ch, sk = tables

    def directed(d):
        return (d.last_t, d.sums, d.res, d.pair, d.dir, d.pairs.last_t, d.pairs.sr, d.pairs.chan)

    _damped_rows(out, t, x, lam, var_rtol, epoch, ids[0], mi.last_t, mi.sums, ids[1], h.last_t, h.sums,
                 ids[2], *directed(ch), ids[3], *directed(sk))
