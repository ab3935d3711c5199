"""The 115 N-BaIoT features of every packet: damped statistics over five stream aggregations.

Definitions (the data README's "Feature semantics"; Kitsune/AfterImage, Mirsky et al. 2018).
For a stream of values ``x_k`` at times ``t_k`` and a decay factor λ, at time ``t``::

    w = Σ 2^(−λ(t − t_k)),   mean = Σ 2^(−λ(t − t_k)) x_k / w,
    variance = Σ 2^(−λ(t − t_k)) x_k² / w − mean²

for λ in (5, 3, 1, 0.1, 0.01), each computed right after the current packet is added:

- ``MI_dir``: packet sizes sent by a source MAC + source IP; weight, mean, variance.
- ``H``: packet sizes sent by a source IP; weight, mean, variance.
- ``HH``: sizes on the channel src IP → dst IP (stream a) together with its reverse b → a
  (stream b): weight, mean, std of a; ``magnitude = sqrt(μ_a² + μ_b²)``,
  ``radius = sqrt(var_a² + var_b²)``, ``covariance = SR / (w_a + w_b)`` and
  ``pcc = covariance / (σ_a σ_b)`` (0 when σ_a σ_b = 0). ``SR`` is the damped sum of residual
  products: each packet of either direction adds ``r · ρ``, its residual ``r = x − μ`` (μ of
  its own direction, including the packet) times the latest residual ``ρ`` of the other
  direction (0 before the other direction has sent anything), as in AfterImage. With no
  reverse traffic: μ_b = var_b = 0, so covariance = 0, pcc = 0, radius = var_a.
- ``HH_jit``: inter-arrival times on the channel src IP → dst IP; weight, mean, variance.
- ``HpHp``: as ``HH`` for the socket pair src IP:port → dst IP:port.

Sizes are wire lengths in bytes; times are seconds. A variance smaller than ``VAR_RTOL`` (1e-8)
times ``Σx²/w`` is reported as 0: it is below the rounding error of the formula above.

First packet of a channel: by default it adds no inter-arrival, so its ``HH_jit`` weight, mean
and variance are 0 and later packets average real gaps only. The original extractor measured
the first gap from time zero, so a new channel's jitter mean is its Unix capture time (about
1.5e9), the capture-clock leakage described in the data README; ``first_jitter_from_epoch=True``
reproduces that (first gap = timestamp, weight 1 like the other streams).

Timestamps that go backwards (multi-queue capture) are clamped to the latest one seen, so every
gap is ≥ 0 (AfterImage likewise never decays backwards and records a negative gap as 0).

Memory: streams whose λ = 0.01 weight has decayed below ``prune_below`` are forgotten (a single
packet takes about 33 minutes to get there with the default 1e-6). A pruning pass runs right after
the first packet that comes ``prune_every`` seconds of capture time or more after the previous
pass (the first pass counts from the first packet), so the rows do not depend on how packets are
split between ``extract`` calls. A forgotten stream restarts from nothing if it is seen again: its
sizes count from its next packet, that packet adds no inter-arrival, and a reverse direction that
was forgotten no longer contributes μ_b, var_b to magnitude and radius. With
``first_jitter_from_epoch`` a forgotten channel's last time is kept (a float per channel ever
pruned), so when it returns its gap is measured from its last packet, as the original extractor,
which forgets nothing, measures it, not from time zero. ``prune_below=0`` keeps every stream.

Two paths compute these: with numba, AfterImage's per-packet loop compiled (:mod:`._kernel`), whose rows
do not depend on how packets are split into calls, bit for bit; without it (the edge install), numpy's
vectorised passes of 8,192 packets (:mod:`._damped`), which sum in another order: the same rows to
rounding, bit for bit only for the same passes (:func:`pass_aligned_chunks`). Both read stream ids
from :mod:`._streams`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from fedcl.data import COLUMNS, N_FEATURES, DataError

from . import _jit
from ._batch import PacketBatch
from ._damped import damped_scan, segment_starts
from ._packets import CaptureReader, Packet
from ._streams import _Directed, _Table, stream_ids

__all__ = ["LAMBDAS", "VAR_RTOL", "FeatureExtractor", "extract_features"]

#: Decay factors λ, in column order.
LAMBDAS: tuple[float, ...] = (5.0, 3.0, 1.0, 0.1, 0.01)
_LAM = np.array(LAMBDAS)
_L = len(LAMBDAS)
_SLOWEST = int(np.argmin(_LAM))
#: A variance below this fraction of the second moment Σx²/w is taken as 0 (rounding noise).
VAR_RTOL = 1e-8
_CHUNK = 8192  # packets per vectorised pass (numpy path) and per key lookup (both paths)


def _moments(S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weight, mean, variance from sums ``S[..., 0:3] = (w, Σx, Σx²)``; 0 where w = 0."""
    w = S[..., 0]
    has = w > 0
    inv = np.divide(1.0, w, out=np.zeros_like(w), where=has)
    mean = S[..., 1] * inv
    second = S[..., 2] * inv
    var = second - mean * mean
    # Σx²/w − mean² cancels: below VAR_RTOL of Σx²/w it is rounding noise, and a noisy
    # non-zero σ would turn pcc = cov / (σ_a σ_b) into noise / noise.
    return w, mean, np.where(var > VAR_RTOL * second, var, 0.0)


class FeatureExtractor:
    """Per-packet N-BaIoT features (115 damped statistics), one packet after another.

    The extractor keeps the state of every stream between calls, so packets must be passed
    in capture order, across as many ``extract``/``update`` calls as convenient.

    Parameters
    ----------
    first_jitter_from_epoch : bool, default False
        Measure a channel's first inter-arrival time from the Unix epoch, as the original
        N-BaIoT extractor did (``HH_jit_*_mean`` ≈ 1.5e9 on first packets: clock leakage).
        By default a first packet adds no inter-arrival.
    prune_below : float, default 1e-6
        Forget streams whose weight for λ = 0.01 has decayed below this (0: never).
    prune_every : float, default 60.0
        Capture seconds between two pruning passes.
    compiled : bool or None, default None
        Compute with numba's per-packet loop (True) or numpy's vectorised passes (False: ~9x slower;
        the same rows to rounding, ~1e-11 of a column's scale); None: numba when it is installed.

    Examples
    --------
    >>> rows = FeatureExtractor().extract(read_packets("capture.pcap"))  # doctest: +SKIP
    """

    def __init__(self, first_jitter_from_epoch: bool = False, prune_below: float = 1e-6,
                 prune_every: float = 60.0, compiled: bool | None = None):
        self.first_jitter_from_epoch = first_jitter_from_epoch
        self.prune_below = prune_below
        self.prune_every = prune_every
        self.compiled = compiled

    # -- public API -----------------------------------------------------------------------
    def update(self, packet: Packet) -> np.ndarray:
        """Add one packet; return its features, shape (115,). ``extract`` is much faster."""
        return self.extract([packet])[0]

    def extract(self, packets: PacketBatch | Iterable[Packet]) -> np.ndarray:
        """Add packets in capture order; return their features, shape (n_packets, 115).

        ``packets``: a :class:`~fedcl.traffic.PacketBatch` (fastest: see ``CaptureReader.batches``),
        or :class:`~fedcl.traffic.Packet` objects.
        """
        if not hasattr(self, "_mi"):
            self._start()
        if not isinstance(packets, PacketBatch):
            packets = PacketBatch.from_packets(packets if isinstance(packets, list) else list(packets))
        out = np.empty((len(packets), N_FEATURES))
        t = self._clamped_times(packets.timestamp)
        lo = 0
        while lo < len(packets):
            due = self._next_pruning(t, lo)  # a pass ends a run: it sees every packet before it
            hi = min(lo + _CHUNK, len(t) if due is None else due + 1)
            self._run(packets[lo:hi], t[lo:hi], out[lo:hi])
            if due is not None and hi == due + 1:
                self._prune(float(t[due]))
            lo = hi
        return out

    @property
    def n_live_streams(self) -> int:
        """Streams (and channel/socket pairs) currently held in memory."""
        if not hasattr(self, "_mi"):
            return 0
        return (len(self._mi) + len(self._h) + len(self._ch) + len(self._ch.pairs)
                + len(self._sk) + len(self._sk.pairs))

    # -- internals ------------------------------------------------------------------------
    def _start(self) -> None:
        if self.prune_below < 0 or self.prune_every <= 0:
            raise ValueError("prune_below must be ≥ 0 and prune_every > 0")
        if self.compiled and not _jit.have_numba():
            raise ValueError("compiled=True needs numba, which is not installed")
        self._compiled = _jit.have_numba() if self.compiled is None else bool(self.compiled)
        one_d = dict(last_t=((), np.nan), sums=((_L, 3), 0.0))
        self._mi = _Table(**one_d)
        self._h = _Table(**one_d)
        # sizes (w, Σx, Σx²) then jitter (w, Σg, Σg²)
        self._ch = _Directed(width=6, n_rates=_L, remember=self.first_jitter_from_epoch)
        self._sk = _Directed(width=3, n_rates=_L)
        self._clock = -np.inf
        self._pruned_at = None

    def _clamped_times(self, timestamp: np.ndarray) -> np.ndarray:
        """Capture times, never before the latest one seen (this call's and earlier ones)."""
        t = np.maximum.accumulate(np.maximum(timestamp, self._clock))
        if len(t):
            self._clock = t[-1]
            if self._pruned_at is None:
                self._pruned_at = float(t[0])
        return t

    def _next_pruning(self, t: np.ndarray, lo: int) -> int | None:
        """Index of the first packet from ``lo`` on after which a pruning pass is due; None if none is."""
        if self.prune_below == 0:
            return None
        due = lo + int(np.searchsorted(t[lo:], self._pruned_at + self.prune_every))  # t is sorted
        return due if due < len(t) else None

    def _run(self, packets: PacketBatch, t: np.ndarray, out: np.ndarray) -> None:
        """Features of consecutive packets into ``out``, with no pruning pass due among them."""
        tables = (self._mi, self._h, self._ch, self._sk)
        ids = stream_ids(packets, *tables)
        x = packets.size.astype(np.float64)
        if self._compiled:
            from ._kernel import damped_rows  # imports numba: only now

            damped_rows(out, t, x, _LAM, VAR_RTOL, self.first_jitter_from_epoch, ids, tables)
        else:
            out[:] = self._chunk(x, t, *ids)

    def _chunk(self, x: np.ndarray, t: np.ndarray, mi, h, ch, sk) -> np.ndarray:
        """The numpy path: one vectorised pass over a chunk's packets (their sizes, times, stream ids)."""
        m = len(t)
        out = np.empty((m, N_FEATURES))
        size_sums = np.empty((m, 3))
        size_sums[:, 0], size_sums[:, 1], size_sums[:, 2] = 1.0, x, x * x
        for lo, table, ids in ((0, self._mi, mi), (15, self._h, h)):
            S, _, _ = self._scan(table, ids, t, lambda prev, new: size_sums)
            out[:, lo: lo + 15] = np.stack(_moments(S), axis=-1).reshape(m, 15)

        def with_jitter(prev, new):
            gap = np.where(new, t if self.first_jitter_from_epoch else 0.0, t - prev)
            has = 1.0 if self.first_jitter_from_epoch else (~new).astype(np.float64)
            return np.column_stack([size_sums, np.broadcast_to(has, m), gap, gap * gap])

        S = self._two_d(self._ch, ch, t, x, with_jitter, out[:, 30:65])
        out[:, 65:80] = np.stack(_moments(S[..., 3:]), axis=-1).reshape(m, 15)
        self._two_d(self._sk, sk, t, x, lambda prev, new: size_sums, out[:, 80:115])
        return out

    @staticmethod
    def _scan(table: _Table, ids: np.ndarray, t: np.ndarray, values):
        """Damped sums of each packet's stream after adding it, shape (m, L, c); stores state.

        ``values(prev, new)`` gives the (m, c) values added, from each packet's previous
        time on its stream (``prev``, NaN if the stream is new: ``new``), in packet order.
        Also returns, per stream touched, its id and the index of its last packet.
        """
        order = np.argsort(ids, kind="stable")
        s, ts = ids[order], t[order]
        starts = segment_starts(s)
        prev = np.empty_like(ts)
        prev[1:] = ts[:-1]
        first = s[starts]
        prev[starts] = table.last_t[first]
        new = np.isnan(prev)
        gamma = np.exp2(-np.where(new, 0.0, ts - prev)[:, None] * _LAM)  # (m, L)
        prev_in_order = np.empty_like(prev)
        prev_in_order[order] = prev
        X = values(prev_in_order, np.isnan(prev_in_order))[order]  # (m, c)
        S = damped_scan(starts, gamma, np.broadcast_to(X[:, None, :], (len(X), _L, X.shape[1])),
                        table.sums[first])
        ends = np.empty_like(starts)
        ends[-1] = True
        ends[:-1] = starts[1:]
        table.sums[s[ends]] = S[ends]
        table.last_t[s[ends]] = ts[ends]
        result = np.empty_like(S)
        result[order] = S
        return result, s[ends], order[ends]

    def _two_d(self, table: _Directed, ids, t, x, values, out) -> np.ndarray:
        """HH / HpHp block into ``out`` (m, 35); returns the directed streams' sums."""
        m = len(ids)
        pid = table.pair[ids]
        direction = table.dir[ids]
        # The reverse direction as it stood before this chunk (fill values if it is new).
        rev = table.pairs.chan[pid, 1 - direction]
        has_rev = rev >= 0
        rev = np.where(has_rev, rev, 0)
        pre_S = np.where(has_rev[:, None, None], table.sums[rev, :, :3], 0.0)
        pre_t = np.where(has_rev, table.last_t[rev], np.nan)
        pre_res = np.where(has_rev[:, None], table.res[rev], 0.0)

        S, last_ids, last_rows = self._scan(table, ids, t, values)
        w_a, mu_a, var_a = _moments(S[..., :3])
        res = x[:, None] - mu_a  # (m, L) residual of each packet against its own direction
        table.res[last_ids] = res[last_rows]

        # Within each pair, in time order, the latest earlier packet of the other direction.
        order = np.argsort(pid, kind="stable")
        p, d = pid[order], direction[order]
        starts = segment_starts(p)
        pos = np.arange(m)
        seg_first = np.maximum.accumulate(np.where(starts, pos, 0))
        last = [np.maximum.accumulate(np.where(d == k, pos, -1)) for k in (0, 1)]
        partner = np.where(d == 0, last[1], last[0])
        in_chunk = partner >= seg_first
        partner_row = np.empty(m, dtype=np.int64)
        partner_row[order] = np.where(in_chunk, order[np.maximum(partner, 0)], -1)
        inside = partner_row >= 0
        rows = np.where(inside, partner_row, 0)
        S_b = np.where(inside[:, None, None], S[rows, :, :3], pre_S)
        t_b = np.where(inside, t[rows], pre_t)
        rho = np.where(inside[:, None], res[rows], pre_res)

        _, mu_b, var_b = _moments(S_b)
        age = np.where(np.isnan(t_b), np.inf, t - t_b)
        w_b = np.where(np.isnan(t_b)[:, None], 0.0, S_b[..., 0] * np.exp2(-age[:, None] * _LAM))

        # Damped sum of residual products per pair.
        ts = t[order]
        prev = np.empty_like(ts)
        prev[1:] = ts[:-1]
        first = p[starts]
        prev[starts] = table.pairs.last_t[first]
        gamma = np.exp2(-np.where(np.isnan(prev), 0.0, ts - prev)[:, None] * _LAM)
        SR_sorted = damped_scan(starts, gamma, (res * rho)[order], table.pairs.sr[first])
        ends = np.empty_like(starts)
        ends[-1] = True
        ends[:-1] = starts[1:]
        table.pairs.sr[p[ends]] = SR_sorted[ends]
        table.pairs.last_t[p[ends]] = ts[ends]
        SR = np.empty_like(SR_sorted)
        SR[order] = SR_sorted

        cov = SR / (w_a + w_b)
        sd_a, sd_b = np.sqrt(var_a), np.sqrt(var_b)
        denom = sd_a * sd_b
        pcc = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
        block = np.stack([w_a, mu_a, sd_a, np.sqrt(mu_a**2 + mu_b**2), np.sqrt(var_a**2 + var_b**2),
                          cov, pcc], axis=-1)  # (m, L, 7)
        out[:] = block.reshape(m, 7 * _L)
        return S

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        for table in (self._mi, self._h, self._ch, self._sk):
            live = np.flatnonzero(~np.isnan(table.last_t))
            weight = table.sums[live, _SLOWEST, 0] * np.exp2(-_LAM[_SLOWEST] * (now - table.last_t[live]))
            dead = live[weight < self.prune_below]
            if len(dead):
                table.remove(dead)


def extract_features(path: str | os.PathLike, first_jitter_from_epoch: bool = False) -> pd.DataFrame:
    """The 115 N-BaIoT features of every packet of a capture.

    Parameters
    ----------
    path : str or os.PathLike
        pcap or pcapng file of Ethernet frames.
    first_jitter_from_epoch : bool, default False
        See :class:`FeatureExtractor`.

    Returns
    -------
    pandas.DataFrame, shape (n_packets, 115)
        Columns ``fedcl.data.COLUMNS``, one row per packet in capture order.

    Raises
    ------
    fedcl.data.DataError
        Not a capture, or damaged; ``features_command`` keeps the rows read before damage.
    """
    extractor = FeatureExtractor(first_jitter_from_epoch=first_jitter_from_epoch)
    parts = [np.empty((0, N_FEATURES))]
    for chunk in pass_aligned_chunks(CaptureReader(path), _CHUNK, extractor):
        parts.append(extractor.extract(chunk))
    return pd.DataFrame(np.vstack(parts), columns=list(COLUMNS))


def pass_aligned_chunks(packets: CaptureReader | Iterable[Packet], size: int,
                        extractor: FeatureExtractor) -> Iterator[PacketBatch | list[Packet]]:
    """Chunks of at most ``size`` consecutive packets, each ending where ``extractor`` ends a pass when given
    the whole capture (after ``size`` packets, or after a pruning pass, which runs after the first packet
    ``prune_every`` capture seconds past the previous one: see :class:`FeatureExtractor`), so extracting
    chunk by chunk gives the same rows bit for bit. The packets before a DataError come first, then it.

    From a :class:`~fedcl.traffic.CaptureReader` the chunks are :class:`~fedcl.traffic.PacketBatch` es
    (read with its ``batches``: no Packet object is built), otherwise lists of the packets given."""
    if size % _CHUNK:  # passes start every _CHUNK packets: a chunk must end where one does
        raise ValueError(f"chunks must be a multiple of {_CHUNK:,} packets, not {size:,}")
    if isinstance(packets, CaptureReader):
        yield from _aligned_batches(packets.batches(), size, extractor)
        return
    chunk: list = []
    clock, pruned_at, sent = -np.inf, None, False
    try:
        for packet in packets:
            chunk.append(packet)
            clock = max(clock, packet.timestamp)  # the extractor's clamped time
            pruned_at = clock if pruned_at is None else pruned_at
            due = extractor.prune_below > 0 and clock >= pruned_at + extractor.prune_every
            if due:
                pruned_at = clock
            if due or len(chunk) == size:
                yield chunk
                chunk, sent = [], True
    except DataError:
        if chunk:
            yield chunk
        raise
    if chunk or not sent:
        yield chunk


def _aligned_batches(batches: Iterable[PacketBatch], size: int, extractor: FeatureExtractor) -> Iterator[PacketBatch]:
    """:func:`pass_aligned_chunks` of batches: the same cuts, found with searchsorted on each batch's times."""
    held: list[PacketBatch] = []
    n_held, clock, pruned_at, sent = 0, -np.inf, None, False
    try:
        for batch in batches:
            t = np.maximum.accumulate(np.maximum(batch.timestamp, clock))  # the extractor's clamped times
            clock = t[-1] if len(t) else clock
            lo = 0
            while lo < len(t):
                pruned_at = t[lo] if pruned_at is None else pruned_at
                due = len(t)
                if extractor.prune_below > 0:
                    due = lo + int(np.searchsorted(t[lo:], pruned_at + extractor.prune_every))
                hi = min(len(t), lo + size - n_held, due + 1)
                held.append(batch[lo:hi])
                n_held += hi - lo
                if hi == due + 1:
                    pruned_at = t[due]
                if hi == due + 1 or n_held == size:
                    yield PacketBatch.concat(held)
                    held, n_held, sent = [], 0, True
                lo = hi
    except DataError:
        if held:
            yield PacketBatch.concat(held)
        raise
    if held or not sent:
        yield PacketBatch.concat(held)
