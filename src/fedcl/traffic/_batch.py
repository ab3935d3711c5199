"""Packets as columns (:class:`PacketBatch`), and Ethernet frames decoded into them in bulk.

A :class:`~fedcl.traffic.Packet` per frame costs about a microsecond of Python to build and another
to take apart; at 200,000 packets per second that is almost half the budget. A batch holds the same fields
as numpy arrays, read out of the capture's bytes at fixed offsets for all its untagged IPv4, IPv6
(TCP/UDP/ICMPv6 next header) and ARP frames at once, exactly as :func:`fedcl.traffic._frames._decode_ip`
reads one; every other frame (VLAN tags, IPv6 extension headers, runts...) goes through dpkt, one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from . import _jit
from ._frames import Packet, _decode_dpkt

__all__ = ["PacketBatch", "decode_frames"]

_ADDR = 16  # an address column holds up to an IPv6 address, zero-padded


class PacketBatch:
    """Consecutive packets as columns: the fields of :class:`~fedcl.traffic.Packet`, one row each.

    Iterating yields :class:`~fedcl.traffic.Packet` objects; ``batch[a:b]`` is a batch (of views).

    Attributes
    ----------
    timestamp : ndarray of float64, shape (n,)
    size : ndarray of int64, shape (n,)
    src_mac, dst_mac : ndarray of uint8, shape (n, 6)
    src_ip, dst_ip : ndarray of uint8, shape (n, 16)
        The address bytes, zero-padded to 16.
    src_ip_len, dst_ip_len : ndarray of uint8, shape (n,)
        Bytes of each address: 4 (IPv4, ARP), 16 (IPv6) or 6 (a MAC address standing in for an IP).
    src_port, dst_port : ndarray of int64, shape (n,)
        ``-1`` when the packet has none.
    """

    __slots__ = ("timestamp", "size", "src_mac", "dst_mac", "src_ip", "dst_ip", "src_ip_len", "dst_ip_len",
                 "src_port", "dst_port")

    def __init__(self, timestamp, size, src_mac, dst_mac, src_ip, dst_ip, src_ip_len, dst_ip_len, src_port,
                 dst_port):
        self.timestamp, self.size, self.src_mac, self.dst_mac = timestamp, size, src_mac, dst_mac
        self.src_ip, self.dst_ip, self.src_ip_len, self.dst_ip_len = src_ip, dst_ip, src_ip_len, dst_ip_len
        self.src_port, self.dst_port = src_port, dst_port

    def columns(self) -> tuple[np.ndarray, ...]:
        """The arrays, in attribute order."""
        return tuple(getattr(self, name) for name in self.__slots__)

    def __len__(self) -> int:
        return len(self.timestamp)

    def __getitem__(self, index: slice) -> PacketBatch:
        return PacketBatch(*(column[index] for column in self.columns()))

    def __iter__(self) -> Iterator[Packet]:
        smac, dmac = self.src_mac.tobytes(), self.dst_mac.tobytes()
        sip, dip = self.src_ip.tobytes(), self.dst_ip.tobytes()
        for i, (t, n, sl, dl, sp, dp) in enumerate(zip(
                self.timestamp.tolist(), self.size.tolist(), self.src_ip_len.tolist(), self.dst_ip_len.tolist(),
                self.src_port.tolist(), self.dst_port.tolist())):
            m, a = 6 * i, _ADDR * i
            yield Packet(t, n, smac[m: m + 6], dmac[m: m + 6], sip[a: a + sl], dip[a: a + dl], sp, dp)

    @classmethod
    def from_packets(cls, packets: Sequence[Packet]) -> PacketBatch:
        """The batch of ``packets`` (6-byte MAC addresses, IP addresses of at most 16 bytes)."""
        if not packets:
            return _empty()
        t, size, smac, dmac, sip, dip, sport, dport = zip(*packets)

        def macs(values):
            joined = b"".join(values)
            if len(joined) != 6 * len(values) or any(len(v) != 6 for v in values):
                raise ValueError("MAC addresses must be 6 bytes")
            return np.frombuffer(joined, dtype=np.uint8).reshape(-1, 6)

        def addresses(values):
            lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
            if lengths.max() > _ADDR:
                raise ValueError(f"addresses must be at most {_ADDR} bytes")
            if (lengths == _ADDR).all():
                joined = b"".join(values)
            else:
                joined = b"".join(v.ljust(_ADDR, b"\0") for v in values)
            return np.frombuffer(joined, dtype=np.uint8).reshape(-1, _ADDR), lengths.astype(np.uint8)

        (src_ip, src_len), (dst_ip, dst_len) = addresses(sip), addresses(dip)
        return cls(np.array(t, dtype=np.float64), np.array(size, dtype=np.int64), macs(smac), macs(dmac),
                   src_ip, dst_ip, src_len, dst_len, np.array(sport, dtype=np.int64), np.array(dport, dtype=np.int64))

    @classmethod
    def concat(cls, batches: Sequence[PacketBatch]) -> PacketBatch:
        """One batch of ``batches`` in order."""
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return _empty()
        return cls(*(np.concatenate(columns) for columns in zip(*(b.columns() for b in batches))))


def _empty() -> PacketBatch:
    a, mac, addr = np.zeros(0, np.int64), np.zeros((0, 6), np.uint8), np.zeros((0, _ADDR), np.uint8)
    return PacketBatch(np.zeros(0), a, mac, mac, addr, addr, np.zeros(0, np.uint8), np.zeros(0, np.uint8), a, a)


_TCP, _UDP, _ICMP6 = 6, 17, 58  # fedcl.traffic._scan reads the same frames with numba


def _u16(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Big-endian 16-bit words at byte positions ``at``."""
    return (buf[at].astype(np.int64) << 8) | buf[at + 1]


def _fixed_numpy(buf, start, caplen, mac, ip, ip_len, port):
    """Read the fields of untagged IPv4, IPv6 (TCP/UDP/ICMPv6) and ARP frames at fixed offsets, as
    :func:`fedcl.traffic._frames._decode_ip` does, into ``mac`` (n, 2, 6: source, destination), ``ip``
    (n, 2, 16), ``ip_len`` (n, 2) and ``port`` (n, 2); True for the frames read."""
    n = len(start)
    # Only the frames' bytes, padded: a field of a frame too short to have it reads the padding or the
    # next frame (and is then ignored) instead of failing.
    lo, hi = int(start[0]), int((start + caplen).max())
    buf = np.concatenate([buf[lo:hi], np.zeros(64, np.uint8)])
    start = start - lo
    end = start + caplen
    kind = _u16(buf, start + 12)
    ipv4 = (kind == 0x0800) & (caplen >= 34) & (buf[start + 14] & 0x0F >= 5)
    ipv6 = (kind == 0x86DD) & (caplen >= 54) & np.isin(buf[start + 20], (_TCP, _UDP, _ICMP6))
    arp = (kind == 0x0806) & (caplen >= 42)
    v4, v6, a = np.flatnonzero(ipv4), np.flatnonzero(ipv6), np.flatnonzero(arp)
    fixed = ipv4 | ipv6 | arp

    seg = np.zeros(n, np.int64)  # transport header start, absolute in buf
    seg_end = end.copy()
    proto = np.zeros(n, np.int64)
    first = np.ones(n, dtype=bool)
    s4 = start[v4]
    length = _u16(buf, s4 + 16)
    seg[v4] = s4 + 14 + (buf[s4 + 14] & 0x0F).astype(np.int64) * 4
    seg_end[v4] = np.where(length > 0, s4 + 14 + length, end[v4])  # length 0: segmentation offload
    proto[v4] = buf[s4 + 23]
    first[v4] = _u16(buf, s4 + 20) & 0x1FFF == 0  # dpkt decodes the transport header of offset-0 fragments only
    s6 = start[v6]
    length = _u16(buf, s6 + 18)
    seg[v6] = s6 + 54
    seg_end[v6] = np.where(length > 0, s6 + 54 + length, end[v6])
    proto[v6] = buf[s6 + 20]
    room = np.minimum(seg_end, end) - seg
    at = np.clip(seg, 0, len(buf) - 64)
    tcp = (proto == _TCP) & (room >= 20) & (buf[at + 12] >> 4 >= 5)
    udp = (proto == _UDP) & (room >= 8)
    ported = fixed & first & ~arp & (tcp | udp)
    port[:, 0] = np.where(ported, _u16(buf, at), -1)
    port[:, 1] = np.where(ported, _u16(buf, at + 2), -1)

    ip[v4, 0, :4] = buf[s4[:, None] + np.arange(26, 30)]
    ip[v4, 1, :4] = buf[s4[:, None] + np.arange(30, 34)]
    ip[v6, 0] = buf[s6[:, None] + np.arange(22, 38)]
    ip[v6, 1] = buf[s6[:, None] + np.arange(38, 54)]
    ip[a, 0, :4] = buf[start[a, None] + np.arange(28, 32)]  # ARP: sender and target protocol addresses
    ip[a, 1, :4] = buf[start[a, None] + np.arange(38, 42)]
    ip_len[:] = np.where(ipv6, _ADDR, 4)[:, None]
    mac[:, 0] = buf[start[:, None] + np.arange(6, 12)]
    mac[:, 1] = buf[start[:, None] + np.arange(0, 6)]
    return fixed


def decode_frames(buf: np.ndarray, start: np.ndarray, caplen: np.ndarray, timestamp: np.ndarray,
                  wirelen: np.ndarray) -> PacketBatch:
    """The packets of the Ethernet frames ``buf[start[i] : start[i] + caplen[i]]``, frame for frame as dpkt.

    Parameters
    ----------
    buf : ndarray of uint8
        Bytes holding the frames (a block of the capture file).
    start, caplen : ndarray of int64, shape (n,)
        Where each frame starts in ``buf`` and its captured length.
    timestamp : ndarray of float64, shape (n,)
    wirelen : ndarray of int64, shape (n,)
        Each frame's length on the wire (the packet's size).

    Returns
    -------
    PacketBatch
        One row per frame with an Ethernet header, in order; frames shorter than one are left out
        (their number is ``n − len(batch)``).
    """
    n = len(start)
    if n == 0:
        return _empty()
    mac = np.zeros((n, 2, 6), np.uint8)  # (source, destination) of each frame
    ip = np.zeros((n, 2, _ADDR), np.uint8)
    ip_len = np.zeros((n, 2), np.uint8)
    port = np.full((n, 2), -1, np.int64)
    if _jit.have_numba():
        from ._scan import fixed_offsets as read
    else:
        read = _fixed_numpy
    keep = read(buf, start, caplen, mac, ip, ip_len, port)

    # Every other frame through dpkt: VLAN tags, IPv6 extension headers, short ARP...; runts are left out
    for i in np.flatnonzero(~keep & (caplen >= 14)).tolist():
        p = _decode_dpkt(0.0, 0, buf[start[i]: start[i] + caplen[i]].tobytes())
        if p is None:
            continue
        keep[i] = True
        mac[i, 0], mac[i, 1] = np.frombuffer(p.src_mac, np.uint8), np.frombuffer(p.dst_mac, np.uint8)
        ip[i, 0, : len(p.src_ip)] = np.frombuffer(p.src_ip, np.uint8)
        ip[i, 1, : len(p.dst_ip)] = np.frombuffer(p.dst_ip, np.uint8)
        ip_len[i] = len(p.src_ip), len(p.dst_ip)
        port[i] = p.src_port, p.dst_port
    size = np.array(wirelen, dtype=np.int64)  # a copy: the caller reuses its arrays
    timestamp = np.asarray(timestamp, dtype=np.float64)
    if not keep.all():
        timestamp, size, mac, ip, ip_len, port = (a[keep] for a in (timestamp, size, mac, ip, ip_len, port))
    return PacketBatch(timestamp, size, mac[:, 0], mac[:, 1], ip[:, 0], ip[:, 1], ip_len[:, 0], ip_len[:, 1],
                       port[:, 0], port[:, 1])
