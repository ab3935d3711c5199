"""Read pcap and pcapng captures into packets: :class:`Packet` objects, or columns (:class:`PacketBatch`).

The file framing (pcap record headers, pcapng block headers) is read here, not by dpkt's readers,
because they neither report the wire length of a frame nor notice a record cut short at the end
of a truncated file; both matter here. A pcap file is read in blocks of 4 MB: a loop compiled by
numba (a :mod:`struct` loop without it) finds where each record's frame lies, then
:func:`fedcl.traffic._batch.decode_frames` reads the frames' fields in bulk. pcapng blocks are
walked in Python (one per packet, with options to honour), their frames decoded in bulk likewise.
Which frames give which keys: :mod:`fedcl.traffic._frames`. Only Ethernet link types are read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import dpkt
import numpy as np

from fedcl.data import DataError

from ._batch import PacketBatch, decode_frames
from ._frames import Packet, _decode, _decode_dpkt  # noqa: F401  (_decode*: live capture and tests)
from . import _jit

__all__ = ["Packet", "PacketBatch", "CaptureReader", "read_packets"]

_ETHERNET = dpkt.pcap.DLT_EN10MB
# A record longer than this is a damaged length field, not a packet.
_MAX_RECORD = 1 << 26
_PCAP_MAGIC = {  # magic bytes -> (byte order, fractional-second divisor)
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAPNG_IDB, _PCAPNG_PB, _PCAPNG_EPB = 1, 2, 6
_BLOCK = 1 << 22  # bytes read at a time from a pcap file
_BATCH = 8192  # packets per batch by default


class _Damage(Exception):
    """The file is damaged here (the reader adds how many packets came before)."""


def _scan_pcap_struct(data: bytes, pos: int, big_endian: bool, limit: int, records: np.ndarray):
    """Up to ``limit`` whole pcap records from ``data[pos:]`` into ``records`` (sec, frac, captured length,
    wire length, frame start); returns (records found, position after them, the captured length that is too
    large to be a record at that position, else -1). ~1 µs a record: :func:`fedcl.traffic._scan.scan_pcap`
    does the same with numba in ~20 ns."""
    unpack = struct.Struct(">IIII" if big_endian else "<IIII").unpack_from
    found, end = [], len(data)
    while len(found) < limit and end - pos >= 16:
        sec, frac, caplen, wirelen = unpack(data, pos)
        if caplen > _MAX_RECORD:
            records[: len(found)] = found
            return len(found), pos, caplen
        if end - pos - 16 < caplen:
            break
        found.append((sec, frac, caplen, wirelen, pos + 16))
        pos += 16 + caplen
    if found:
        records[: len(found)] = found
    return len(found), pos, -1


class CaptureReader:
    """Iterate over the packets of a pcap or pcapng file, noticing damage.

    Iterating yields :class:`Packet` objects in file order; :meth:`batches` yields the same packets
    as columns, much faster. When the file is not a capture, or is cut short or corrupt part-way,
    the iteration first yields every packet read intact, then raises :class:`fedcl.data.DataError`,
    whose message says how many packets were read.

    Parameters
    ----------
    path : str or os.PathLike
        The capture file.

    Attributes
    ----------
    n_packets : int
        Packets yielded so far (counted a batch at a time).
    n_skipped : int
        Frames skipped because they were shorter than an Ethernet header.
    offset : int
        Bytes of the file consumed so far (for progress bars).
    size : int
        File size in bytes.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.n_packets = 0
        self.n_skipped = 0
        self.offset = 0
        self.size = self.path.stat().st_size if self.path.exists() else 0

    def _fail(self, what: str) -> DataError:
        return DataError(f"{what}; read {self.n_packets} packets before it", path=self.path)

    def __iter__(self) -> Iterator[Packet]:
        for batch in self.batches():
            yield from batch

    def batches(self, size: int = _BATCH) -> Iterator[PacketBatch]:
        """The packets in file order, as batches of at most ``size`` (fewer at the end of a pcap block).

        Raises
        ------
        fedcl.data.DataError
            As iterating does, after the batch of the packets read intact.
        """
        try:
            f = self.path.open("rb")
        except OSError as e:
            raise DataError(f"cannot open capture: {e.strerror}", path=self.path) from None
        with f:
            magic = f.read(4)
            f.seek(0)
            try:
                if magic in _PCAP_MAGIC:
                    yield from self._pcap(f, *_PCAP_MAGIC[magic], size)
                elif magic == _PCAPNG_MAGIC:
                    yield from self._pcapng(f, size)
                else:
                    raise _Damage("not a pcap or pcapng file (unknown magic number)")
            except _Damage as e:
                raise self._fail(str(e)) from None

    def _emit(self, buf: np.ndarray, records: np.ndarray, timestamp: np.ndarray) -> PacketBatch:
        batch = decode_frames(buf, records[:, 4], records[:, 2], timestamp, records[:, 3])
        self.n_skipped += len(records) - len(batch)
        self.n_packets += len(batch)
        return batch

    def _pcap(self, f, order: str, divisor: float, size: int) -> Iterator[PacketBatch]:
        head = f.read(dpkt.pcap.FileHdr.__hdr_len__)
        if len(head) < dpkt.pcap.FileHdr.__hdr_len__:
            raise _Damage("truncated pcap file header")
        header = (dpkt.pcap.LEFileHdr if order == "<" else dpkt.pcap.FileHdr)(head)
        if header.linktype != _ETHERNET:
            raise _Damage(f"link type {header.linktype} is not Ethernet (only Ethernet captures are read)")
        big = order == ">"
        records = np.empty((size, 5), dtype=np.int64)
        scan = None
        if _jit.have_numba():
            from ._scan import scan_pcap as scan
        self.offset = len(head)
        data = b""
        while True:
            more = f.read(max(_BLOCK, len(data)))  # at least doubles what is held: a huge record ends
            if not more:
                if data:
                    what = "record header" if len(data) < 16 else "record"
                    raise _Damage(f"truncated pcap {what} at byte {self.offset}")
                return
            data = data + more if data else more
            buf = np.frombuffer(data, dtype=np.uint8)
            pos = 0
            while True:
                if scan is not None:
                    n, end, bad = scan(buf, pos, big, size, records)
                else:
                    n, end, bad = _scan_pcap_struct(data, pos, big, size, records)
                if n:
                    found = records[:n]
                    timestamp = found[:, 0] + found[:, 1] / divisor
                    batch = self._emit(buf, found, timestamp)
                    self.offset += end - pos
                    pos = end
                    if batch:
                        yield batch
                if bad >= 0:
                    raise _Damage(f"corrupt pcap record at byte {self.offset} (captured length {bad})")
                if n < size:
                    break
            data = data[pos:]

    def _pcapng(self, f, size: int) -> Iterator[PacketBatch]:
        held: list[tuple[float, int, bytes]] = []  # (timestamp, wire length, frame) not yet emitted

        def emit() -> PacketBatch:
            frames = [frame for _, _, frame in held]
            caplen = np.fromiter(map(len, frames), dtype=np.int64, count=len(frames))
            records = np.zeros((len(held), 5), dtype=np.int64)
            records[:, 2] = caplen
            records[:, 3] = [wire for _, wire, _ in held]
            records[:, 4] = np.cumsum(caplen) - caplen
            timestamp = np.array([t for t, _, _ in held], dtype=np.float64)
            held.clear()
            return self._emit(np.frombuffer(b"".join(frames), dtype=np.uint8), records, timestamp)

        try:
            for record in self._pcapng_records(f):
                held.append(record)
                if len(held) == size:
                    batch = emit()
                    if batch:
                        yield batch
        except _Damage:
            if held:
                batch = emit()
                if batch:
                    yield batch
            raise
        if held:
            batch = emit()
            if batch:
                yield batch

    def _pcapng_records(self, f) -> Iterator[tuple[float, int, bytes]]:
        """(timestamp, wire length, frame) of each packet block."""
        order = None
        interfaces: list[tuple[int, float, int]] = []  # (link type, ticks per second, offset s)
        while True:
            raw = f.read(8)
            if not raw:
                return
            if len(raw) < 8:
                raise _Damage(f"truncated pcapng block header at byte {self.offset}")
            if raw[:4] == _PCAPNG_MAGIC:  # section header: (re)sets byte order and interfaces
                bom = f.read(4)
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    raise _Damage(f"corrupt pcapng section header at byte {self.offset}")
                length = struct.unpack(order + "I", raw[4:])[0]
                body = bom + f.read(max(length - 12, 0))
                interfaces = []
            else:
                if order is None:
                    raise _Damage("pcapng file does not start with a section header")
                btype, length = struct.unpack(order + "II", raw)
                if length < 12 or length > _MAX_RECORD:
                    raise _Damage(f"corrupt pcapng block at byte {self.offset} (length {length})")
                body = f.read(length - 8)
            if len(body) < length - 8:
                raise _Damage(f"truncated pcapng block at byte {self.offset}")
            start, self.offset = self.offset, self.offset + length
            if raw[:4] == _PCAPNG_MAGIC:
                continue
            le = order == "<"
            if btype == _PCAPNG_IDB:
                idb = (dpkt.pcapng.InterfaceDescriptionBlockLE if le else dpkt.pcapng.InterfaceDescriptionBlock)(raw + body)
                ticks, shift = 1e6, 0
                for opt in idb.opts:
                    if opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL:
                        res = opt.data[0]
                        ticks = float(2 ** (res & 0x7F) if res & 0x80 else 10 ** (res & 0x7F))
                    elif opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSOFFSET:
                        shift = struct.unpack(order + "q", opt.data)[0]
                interfaces.append((idb.linktype, ticks, shift))
            elif btype in (_PCAPNG_EPB, _PCAPNG_PB):
                # interface (EPB: 4 bytes; PB: 2 + 2 drops), ts high, ts low, captured, wire length
                iface, high, low, caplen, wirelen = struct.unpack(order + "IIIII", body[:20])
                if btype == _PCAPNG_PB:
                    iface = struct.unpack(order + "H", body[:2])[0]
                if iface >= len(interfaces):
                    raise _Damage(f"pcapng packet at byte {start} names undeclared interface {iface}")
                link, ticks, shift = interfaces[iface]
                if link != _ETHERNET:
                    raise _Damage(f"link type {link} is not Ethernet (only Ethernet captures are read)")
                if 20 + caplen > len(body) - 4:
                    raise _Damage(f"corrupt pcapng packet block at byte {start}")
                yield shift + ((high << 32) | low) / ticks, wirelen, body[20:20 + caplen]
            # other blocks (name resolution, statistics, custom) carry no packets


def read_packets(path: str | os.PathLike) -> Iterator[Packet]:
    """Iterate over the packets of a pcap or pcapng capture.

    Parameters
    ----------
    path : str or os.PathLike
        A pcap (micro- or nanosecond, either byte order) or pcapng file of Ethernet frames.

    Yields
    ------
    Packet
        ``(timestamp, size, src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port)``.

    Raises
    ------
    fedcl.data.DataError
        After the last intact packet, when the file is not a capture, uses another link
        type, or is truncated or corrupt; the message gives the number of packets read.
    """
    return iter(CaptureReader(path))
