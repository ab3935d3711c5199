"""Read packets from a live network interface, in batches, through libpcap.

Why pcapy-ng: it is a maintained libpcap binding (the Pcapy API, kept working on current CPython) whose
wheels vendor libpcap for Linux x86_64 and aarch64, glibc and musl, so ``pip install`` needs neither a
system libpcap nor a compiler; gateways are often aarch64. ``next_batch`` hands over many packets per call,
and ``stats()`` gives libpcap's counters, on Linux the kernel's ``PACKET_STATISTICS``: ``tp_drops`` are the
packets the capture ring had no room for. The other bindings either load a system libpcap (python-libpcap,
pcap-ct: there is none here), ship no wheels for Python 3.11 (pypcap) or only for x86_64 glibc (cypcap).

Batches: at most ``batch`` packets, or whatever arrived within ``latency`` seconds (an empty list when
nothing did), so a quiet interface still gives its reader a turn. The handle is non-blocking and waited on
with poll(2): on Linux, libpcap's packet ring delivers a block once it is full or ``latency`` / 2 old, and
its own read timeout does not start until a first packet arrives, so a blocking read could wait forever.

Frames are decoded as :class:`fedcl.traffic.CaptureReader` decodes a file's: the same :class:`Packet`
fields, timestamps in microseconds (the kernel's capture time), so a live batch and the same frames saved
to a pcap file give the same packets. libpcap reports each frame's captured length; with the default
``snaplen`` (262,144 bytes, tcpdump's) every frame is captured whole, so that is its wire length.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import struct
import time
from collections.abc import Iterator

from fedcl.data import DataError
from fedcl.errors import ConfigError
from fedcl.signals import handling

from ._packets import Packet, _decode

__all__ = ["LiveCapture", "stop_capture_on_signals"]

_ETHERNET = 1  # DLT_EN10MB: Ethernet, and Linux loopback
_META = struct.Struct("=IIII")  # next_batch: seconds, microseconds, offset, captured length
_ACTIVATE_ERRORS = {  # pcap_activate(3PCAP)'s errors; pcapy-ng returns the code, not pcap_geterr's text
    -5: "no such device",
    -8: "permission denied (capturing needs root or CAP_NET_RAW)",
    -9: "the interface is down",
    -11: "permission denied for promiscuous mode",
}


class LiveCapture:
    """Packets from a network interface, in capture order, in batches, until :meth:`stop`.

    Use as a context manager: entering opens the interface (root or CAP_NET_RAW), leaving closes it.

    Parameters
    ----------
    interface : str
        An Ethernet interface (or ``lo``).
    batch : int, default 1024
        Most packets per batch.
    latency : float, default 0.2
        Seconds a batch waits for packets at most.
    buffer_mb : int, default 32
        Size of the kernel's capture ring: the packets that can wait while a batch is scored.
    snaplen : int, default 262144
        Bytes captured per frame (frames longer than this would report it as their size).
    promiscuous : bool, default True
        Capture frames addressed to other hosts too (a monitor port, a bridge).

    Attributes
    ----------
    n_packets : int
        Packets yielded so far.
    n_skipped : int
        Frames skipped because they were shorter than an Ethernet header.

    Examples
    --------
    >>> with LiveCapture("eth0") as capture, stop_capture_on_signals(capture):  # doctest: +SKIP
    ...     for packets in capture.batches():
    ...         rows = extractor.extract(packets)
    """

    def __init__(self, interface: str, batch: int = 1024, latency: float = 0.2, buffer_mb: int = 32,
                 snaplen: int = 262_144, promiscuous: bool = True) -> None:
        self.interface = interface
        self.batch = batch
        self.latency = latency
        self.buffer_mb = buffer_mb
        self.snaplen = snaplen
        self.promiscuous = promiscuous

    def __enter__(self) -> LiveCapture:
        if self.batch < 1 or not self.latency > 0 or self.buffer_mb < 1:
            raise ValueError("batch and buffer_mb must be >= 1 and latency > 0")
        try:
            import pcapy
        except ImportError:
            raise ConfigError("live capture needs pcapy-ng (pip install pcapy-ng==2.1.0)") from None
        try:
            socket.if_nametoindex(self.interface)
        except OSError:
            raise ConfigError(f"{self.interface}: no such network interface") from None
        handle = None
        try:
            handle = pcapy.create(self.interface)
            handle.set_snaplen(self.snaplen)
            handle.set_promisc(self.promiscuous)
            handle.set_timeout(max(int(self.latency * 500), 1))  # ms: a ring block is handed over when this old
            handle.set_buffer_size(self.buffer_mb << 20)
            status = handle.activate()  # libpcap's status: < 0 an error, > 0 a warning
        except pcapy.PcapError as e:
            if handle is not None:
                handle.close()
            raise ConfigError(f"cannot capture on {self.interface}: {_one_line(e)}") from None
        if status is not None and status < 0:
            handle.close()
            raise ConfigError(f"cannot capture on {self.interface}: "
                              f"{_ACTIVATE_ERRORS.get(status, f'libpcap error {status}')}")
        link = handle.datalink()
        if link != _ETHERNET:
            handle.close()
            raise ConfigError(f"{self.interface}: link type {link} is not Ethernet (only Ethernet interfaces are read)")
        handle.setnonblock(1)
        self._handle = handle
        self._poll = select.poll()
        self._poll.register(handle.getfd(), select.POLLIN)
        self._stopping, self._counts, self._last, self._error = False, None, (0, 0, 0), pcapy.PcapError
        self.n_packets = self.n_skipped = 0
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(self._error):  # an interface gone keeps the counts of its last batch
            self._counts = self.stats()
        self._counts = self._counts or self._last
        self._handle.close()

    def stop(self) -> None:
        """End :meth:`batches` after the batch being read (safe from a signal handler)."""
        self._stopping = True

    def stats(self) -> tuple[int, int, int]:
        """``(received, dropped, if_dropped)``: libpcap's counters since the interface was opened (the last
        ones once it is closed). ``dropped``: packets the kernel's ring had no room for."""
        if self._counts is not None:
            return self._counts
        return tuple(int(v) for v in self._handle.stats())

    def batches(self) -> Iterator[list[Packet]]:
        """Lists of at most ``batch`` consecutive packets, each read within ``latency`` seconds (empty when
        none came), until :meth:`stop`.

        Raises
        ------
        fedcl.data.DataError
            The interface went down or away; the packets read before come first.
        """
        while not self._stopping:
            packets: list[Packet] = []
            deadline = time.monotonic() + self.latency
            while len(packets) < self.batch and not self._stopping:
                try:
                    data, meta = self._handle.next_batch(self.batch - len(packets))
                except self._error as e:  # the interface went down or away
                    if packets:
                        yield packets
                    raise DataError(f"capture stopped: {_one_line(e)}", path=self.interface) from None
                if meta:
                    self._decode(data, meta, packets)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._poll.poll(left * 1000)  # a signal wakes it: the handler runs, then poll waits on
            try:
                self._last = self.stats()
            except self._error as e:
                if packets:
                    yield packets
                raise DataError(f"capture stopped: {_one_line(e)}", path=self.interface) from None
            yield packets

    def _decode(self, data: bytes, meta: bytes, packets: list[Packet]) -> None:
        """Append the packets of one ``next_batch`` call."""
        append = packets.append
        for sec, usec, offset, caplen in _META.iter_unpack(meta):
            packet = _decode(sec + usec / 1e6, caplen, data[offset : offset + caplen])
            if packet is None:
                self.n_skipped += 1
            else:
                append(packet)
                self.n_packets += 1


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def stop_capture_on_signals(capture: LiveCapture, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
    """Within the block, SIGINT and SIGTERM stop ``capture`` (its batches end) instead of the process; a
    second one raises KeyboardInterrupt (a scorer that hangs can still be interrupted). The previous
    handlers come back afterwards. Only the main thread can set handlers."""

    def handler(signum, frame):
        if capture._stopping:
            raise KeyboardInterrupt
        capture.stop()

    with handling(handler, signals):
        yield capture
