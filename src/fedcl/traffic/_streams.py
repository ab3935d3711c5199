"""Streams as integer ids: each stream key (MAC + IP, IP, IP pair, socket pair) maps to a row of state arrays.

The extractor's state is one row per stream in numpy arrays (last time, damped sums, residuals), so
both its paths, numba's per-packet loop and numpy's vectorised passes, index them by integer. Keys
are mapped to ids a batch at a time: a hash table compiled by numba (np.unique without numba) over the
batch's packed addresses and ports finds its distinct keys (a few hundred in a batch of thousands of
packets, typically), and only those are looked up in a dict, by the keys a
:class:`~fedcl.traffic.Packet` gives (address bytes, ports). Freed ids are reused after pruning.
"""

from __future__ import annotations

import numpy as np

from . import _jit
from ._batch import PacketBatch

__all__ = ["stream_ids"]  # and _Table, _Directed for the extractor


class _Table:
    """Integer ids for stream keys; state arrays indexed by id; ids reused after removal.

    With ``remember``, a removed stream's last time is kept and restored if its key is added again,
    with its sums at zero: its next packet then sees the gap since its last one.
    """

    def __init__(self, remember: bool = False, **fields: tuple[tuple[int, ...], float]):
        self.index: dict = {}
        self.keys: list = []
        self.free: list[int] = []
        self.gone: dict | None = {} if remember else None  # key -> last time, of removed streams
        self._fields = fields
        for name, (tail, fill) in fields.items():
            setattr(self, name, np.full((0, *tail), fill, dtype=np.int64 if isinstance(fill, int) else np.float64))

    def __len__(self) -> int:
        return len(self.index)

    def add(self, key) -> int:
        """Register ``key`` and return its id (its state rows hold the fill values)."""
        if self.free:
            i = self.free.pop()
            self.keys[i] = key
        else:
            i = len(self.keys)
            self.keys.append(key)
            if i >= len(self.last_t):
                self._grow(max(64, 2 * i))
        self.index[key] = i
        if self.gone:
            self.last_t[i] = self.gone.pop(key, np.nan)
        return i

    def _grow(self, capacity: int) -> None:
        for name, (tail, fill) in self._fields.items():
            old = getattr(self, name)
            new = np.full((capacity, *tail), fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def ids(self, keys: Sequence) -> np.ndarray:
        """Ids of ``keys``, registering the new ones."""
        get = self.index.get
        ids = [get(k, -1) for k in keys]
        if -1 in ids:
            for i, v in enumerate(ids):
                if v < 0:
                    v = get(keys[i], -1)
                    ids[i] = v if v >= 0 else self.add(keys[i])
        return np.array(ids, dtype=np.int64)

    def remove(self, ids: np.ndarray) -> None:
        """Forget streams ``ids`` and reset their state rows."""
        if self.gone is not None:
            self.gone.update(zip([self.keys[i] for i in ids.tolist()], self.last_t[ids].tolist()))
        for i in ids.tolist():
            del self.index[self.keys[i]]
            self.keys[i] = None
            self.free.append(i)
        for name, (_, fill) in self._fields.items():
            getattr(self, name)[ids] = fill


class _Directed(_Table):
    """Directed streams (channels, socket pairs), each linked to its unordered pair."""

    def __init__(self, width: int, n_rates: int, remember: bool = False):
        super().__init__(remember, last_t=((), np.nan), sums=((n_rates, width), 0.0), res=((n_rates,), 0.0),
                         pair=((), -1), dir=((), -1))
        self.pairs = _Table(last_t=((), np.nan), sr=((n_rates,), 0.0), chan=((2,), -1))

    def add(self, key) -> int:
        i = super().add(key)
        a, b = key
        forward = a <= b
        pid = self.pairs.ids([(a, b) if forward else (b, a)])[0]
        direction = 0 if forward else 1
        self.pairs.chan[pid, direction] = i
        self.pair[i] = pid
        self.dir[i] = direction
        return i

    def remove(self, ids: np.ndarray) -> None:
        pids = self.pair[ids]
        self.pairs.chan[pids, self.dir[ids]] = -1
        super().remove(ids)
        orphans = np.unique(pids[(self.pairs.chan[pids] < 0).all(axis=1)])
        self.pairs.remove(orphans)




def _unique(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of a row with each distinct code (int64, shape (k,), or uint8 rows, shape (k, 24)), and each
    row's distinct-code number."""
    words = codes.view(np.uint64).reshape(len(codes), -1)
    if _jit.have_numba():
        from ._kernel import distinct_rows  # a hash table, ~5x faster than sorting

        return distinct_rows(words)
    if words.shape[1] == 1:
        return _sorted_unique(words[:, 0])
    with np.errstate(over="ignore"):  # rows hashed to one word (multiplication modulo 2^64 is the point)
        hashed = words[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ words[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F) \
            ^ words[:, 2] * np.uint64(0x165667B19E3779F9)
    some, inverse = _sorted_unique(hashed)  # ~10x faster than sorting 24-byte rows
    if (words == words[some][inverse]).all():
        return some, inverse
    return _sorted_unique(codes.view(np.dtype((np.void, codes.shape[1]))).reshape(-1))  # hashes collide


def _sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_unique` of a 1-D array with np.unique."""
    distinct, inverse = np.unique(values, return_inverse=True)  # return_index: a stable sort, 3x slower
    inverse = inverse.reshape(-1)
    some = np.empty(len(distinct), np.int64)
    some[inverse] = np.arange(len(inverse))
    return some, inverse


def stream_ids(batch: PacketBatch, mi: _Table, h: _Table, ch: _Directed, sk: _Directed) -> tuple[np.ndarray, ...]:
    """Ids of each packet's MI_dir (src MAC, src IP), H (src IP), channel (src IP, dst IP) and socket pair
    ((src IP, src port), (dst IP, dst port)) streams, registering new streams in the tables."""
    n = len(batch)
    # every address of the batch once: rows of address bytes then length, sources then destinations
    rows = np.zeros((2 * n, 24), np.uint8)
    rows[:n, :16], rows[:n, 16], rows[n:, :16], rows[n:, 16] = (batch.src_ip, batch.src_ip_len, batch.dst_ip,
                                                                  batch.dst_ip_len)
    first, addr = _unique(rows)
    names = [rows[i, : rows[i, 16]].tobytes() for i in first.tolist()]
    src, dst, n_addr = addr[:n], addr[n:], len(first)
    mac_rows = np.zeros((n, 8), np.uint8)
    mac_rows[:, :6] = batch.src_mac
    mac_first, mac = _unique(mac_rows.view(np.uint64).reshape(-1))
    macs = [batch.src_mac[i].tobytes() for i in mac_first.tolist()]
    # endpoints (address, port) for socket pairs
    low = min(int(batch.src_port.min()), int(batch.dst_port.min()), -1)
    span = max(int(batch.src_port.max()), int(batch.dst_port.max()), 0) - low + 1
    _, end = _unique(np.concatenate([src * span + (batch.src_port - low), dst * span + (batch.dst_port - low)]))
    n_end = int(end.max()) + 1

    def ids(table, codes, *parts):
        """Ids of the streams keyed by ``parts`` (each: (names, per-packet index into them), or (None, values)),
        looked up once per distinct key: a part alone, a pair, or two (address, port) pairs."""
        first, inverse = _unique(codes)
        columns = [[names[j] for j in index[first].tolist()] if names is not None else index[first].tolist()
                   for names, index in parts]
        if len(columns) == 4:
            keys = list(zip(zip(columns[0], columns[1]), zip(columns[2], columns[3])))
        else:
            keys = list(zip(*columns)) if len(columns) == 2 else columns[0]
        return table.ids(keys)[inverse]

    src_name, dst_name = (names, src), (names, dst)
    sk = ids(sk, end[:n] * n_end + end[n:], src_name, (None, batch.src_port), dst_name, (None, batch.dst_port))
    return (ids(mi, mac * n_addr + src, (macs, mac), src_name),
            ids(h, src, src_name),
            ids(ch, src * n_addr + dst, src_name, dst_name),
            sk)
