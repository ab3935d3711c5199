"""The decoder's loops, compiled by numba: where each pcap record lies, and common frames' fields.

Imported only when numba is installed (:func:`fedcl.traffic._jit.have_numba`). Each loop does what its
numpy or :mod:`struct` counterpart does (:func:`fedcl.traffic._packets._scan_pcap_struct`,
:func:`fedcl.traffic._batch._fixed_numpy`), one record or frame at a time: a pcap record's position
depends on the previous record's length, which numpy cannot vectorise, and a loop reads a frame's fields
in one pass instead of one numpy pass per field. tests/traffic/test_traffic_packets.py runs both.
"""

from __future__ import annotations

import numpy as np

from ._batch import _ICMP6, _TCP, _UDP
from ._jit import jit
from ._packets import _MAX_RECORD

__all__ = ["fixed_offsets", "scan_pcap"]


def _u32(buf, at, big_endian):
    """The 32-bit word at ``buf[at]``."""
    a, b, c, d = np.int64(buf[at]), np.int64(buf[at + 1]), np.int64(buf[at + 2]), np.int64(buf[at + 3])
    return (a << 24) | (b << 16) | (c << 8) | d if big_endian else (d << 24) | (c << 16) | (b << 8) | a


def _scan_pcap(buf, pos, big_endian, limit, records, max_record):
    """Up to ``limit`` whole pcap records from ``buf[pos:]`` into ``records`` (sec, frac, captured length,
    wire length, frame start); returns (records found, position after them, the captured length that is too
    large to be a record at that position, else -1)."""
    n = 0
    end = buf.shape[0]
    while n < limit and end - pos >= 16:
        caplen = _u32(buf, pos + 8, big_endian)
        if caplen > max_record:
            return n, pos, caplen
        if end - pos - 16 < caplen:
            break
        records[n, 0] = _u32(buf, pos, big_endian)
        records[n, 1] = _u32(buf, pos + 4, big_endian)
        records[n, 2] = caplen
        records[n, 3] = _u32(buf, pos + 12, big_endian)
        records[n, 4] = pos + 16
        n += 1
        pos += 16 + caplen
    return n, pos, -1


def _be16(buf, at):
    """The big-endian 16-bit word at ``buf[at]``."""
    return (np.int64(buf[at]) << 8) | np.int64(buf[at + 1])


def _fixed_offsets(buf, start, caplen, mac, ip, ip_len, port):
    """Fields of untagged IPv4, IPv6 (TCP/UDP/ICMPv6) and ARP frames, as
    :func:`fedcl.traffic._batch._fixed_numpy` reads them; True for the frames read."""
    n = start.shape[0]
    done = np.zeros(n, np.bool_)
    for i in range(n):
        s, c = start[i], caplen[i]
        if c < 14:
            continue
        kind = _be16(buf, s + 12)
        proto, seg, end, first = 0, 0, c, True
        if kind == 0x0800 and c >= 34 and buf[s + 14] & 0x0F >= 5:
            length = _be16(buf, s + 16)
            seg = 14 + np.int64(buf[s + 14] & 0x0F) * 4
            end = 14 + length if length > 0 else c  # length 0: segmentation offload
            first = _be16(buf, s + 20) & 0x1FFF == 0
            proto = buf[s + 23]
            for k in range(4):
                ip[i, 0, k], ip[i, 1, k] = buf[s + 26 + k], buf[s + 30 + k]
            ip_len[i, 0], ip_len[i, 1] = 4, 4
        elif kind == 0x86DD and c >= 54 and (buf[s + 20] == _TCP or buf[s + 20] == _UDP or buf[s + 20] == _ICMP6):
            length = _be16(buf, s + 18)
            seg, end, proto = 54, (54 + length if length > 0 else c), buf[s + 20]
            for k in range(16):
                ip[i, 0, k], ip[i, 1, k] = buf[s + 22 + k], buf[s + 38 + k]
            ip_len[i, 0], ip_len[i, 1] = 16, 16
        elif kind == 0x0806 and c >= 42:
            for k in range(4):
                ip[i, 0, k], ip[i, 1, k] = buf[s + 28 + k], buf[s + 38 + k]
            ip_len[i, 0], ip_len[i, 1] = 4, 4
            first = False
        else:
            continue
        room = min(end, c) - seg
        port[i, 0], port[i, 1] = -1, -1
        if first and ((proto == _TCP and room >= 20 and buf[s + seg + 12] >> 4 >= 5) or (proto == _UDP and room >= 8)):
            port[i, 0], port[i, 1] = _be16(buf, s + seg), _be16(buf, s + seg + 2)
        for k in range(6):
            mac[i, 0, k], mac[i, 1, k] = buf[s + 6 + k], buf[s + k]
        done[i] = True
    return done


_u32 = jit(_u32)  # compiled first: the loops call them compiled
_be16 = jit(_be16)
_scan_pcap = jit(_scan_pcap)
fixed_offsets = jit(_fixed_offsets)


def scan_pcap(buf: np.ndarray, pos: int, big_endian: bool, limit: int, records: np.ndarray):
    """See :func:`fedcl.traffic._packets._scan_pcap_struct` (``buf``: the bytes as uint8)."""
    return _scan_pcap(buf, pos, big_endian, limit, records, _MAX_RECORD)
