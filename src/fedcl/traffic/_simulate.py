"""A simulated IoT network: nine N-BaIoT-like devices, benign and infected, as pcaps and features.

What one capture is: the traffic seen on one device's switch port (both directions), as in
N-BaIoT's port-mirroring set-up. The device sits on 192.168.1.0/24 behind the gateway
192.168.1.1 (also its DNS forwarder); Internet hosts (clouds, P2P relays, NTP, a viewer's
phone, the C&C servers, flood victims, scanned addresses) are reached through the gateway's
MAC. Every scenario is one pcap and one CSV of the 115 N-BaIoT features of its packets,
extracted from the pcap by :class:`fedcl.traffic.FeatureExtractor` (first jitter not from the
epoch, so the simulated data has no capture-clock leakage).

Scenarios per device, in the UCI layout of :func:`fedcl.data.read_dataset`:

- ``benign_traffic``: the device's profile (``_profiles.py``) for ``scale · benign_seconds``.
- ``gafgyt_attacks/{combo,junk,scan,tcp,udp}`` for every device, ``mirai_attacks/{ack,scan,
  syn,udp,udpplain}`` for the seven devices N-BaIoT has Mirai captures of. An infected device
  keeps its benign background, keeps a connection to its C&C server (keep-alives), receives
  the attack command a few seconds into the capture, then attacks.

Attack intensity: per device and family, three attacks are floods (continuous, at the rate the
device's CPU allows, 150-1,080 packets/s), one comes in bursts (half rate, 1 s on, 2 s off)
and one is mild (20 packets/s, 2 s on, 4 s off), which one is drawn from the seed. The
capture holds about 1,000, 700 or 300 attack packets (times ``scale``), plus background.

Determinism: every capture draws from its own generator seeded with ``(seed, device,
scenario)``, so the same seed writes the same bytes whatever the order of work.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import dpkt
import numpy as np

from fedcl.errors import ConfigError

from ._extractor import extract_features
from ._profiles import DEVICES, GATEWAY_IP, GATEWAY_MAC, HOSTS, IN, OUT, DeviceProfile, Periodic, Sessions
from ._tables import FeatureWriter

__all__ = ["ATTACKS", "simulate_network"]

#: Attack files per family, as in the UCI archive.
ATTACKS: dict[str, tuple[str, ...]] = {
    "gafgyt": ("combo", "junk", "scan", "tcp", "udp"),
    "mirai": ("ack", "scan", "syn", "udp", "udpplain"),
}
# Flood rates (packets/s) at cpu = 1; a device's profile scales them.
_FLOOD_PPS = {
    ("gafgyt", "combo"): 400, ("gafgyt", "junk"): 300, ("gafgyt", "scan"): 280, ("gafgyt", "tcp"): 700,
    ("gafgyt", "udp"): 800, ("mirai", "ack"): 500, ("mirai", "scan"): 250, ("mirai", "syn"): 700,
    ("mirai", "udp"): 600, ("mirai", "udpplain"): 900,
}
# level -> (rate factor or absolute pps if > 1, seconds on, seconds off, attack packets at scale 1)
_LEVELS = {"flood": (1.0, 1.0, 0.0, 1000), "burst": (0.5, 1.0, 2.0, 700), "mild": (20.0, 2.0, 4.0, 300)}
_LEVEL_DRAW = ("flood", "flood", "flood", "burst", "mild")  # shuffled per device and family

_EPOCH = 1_506_000_000.0  # September 2017, when N-BaIoT was captured
_DAY = 86_400.0
_LEAD = 3.0  # seconds of background before the attack command
_BROADCAST = b"\xff" * 6
_SSDP_MAC = bytes.fromhex("01005e7ffffa")
_CNC = {"mirai": ("203.0.113.66", 23), "gafgyt": ("198.51.100.66", 666)}
_MIRAI_REPORT = ("203.0.113.67", 48101)
_VICTIM = "198.51.100.200"

_FIN, _SYN, _RST, _PSH, _ACK, _URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_ARP_REQUEST, _ARP_REPLY = 1, 2
_MSS = 1448  # TCP payload of a 1,514-byte frame with the timestamp option
_TS_OPTS = b"\x01\x01\x08\x0a" + bytes(8)
_SYN_OPTS = b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + bytes(8) + b"\x01\x03\x03\x07"
_IP_PROTO = {"tcp": 6, "udp": 17}

Progress = Callable[[int, int, str], None]


def _ip(text: str) -> bytes:
    return socket.inet_aton(text)


class _Capture:
    """Packets seen on one device's port, in any order; ``frames`` sorts them by time."""

    def __init__(self, device: DeviceProfile, rng: np.random.Generator):
        self.device = device
        self.rng = rng
        self.ip = _ip(device.ip)
        self.rows: list[tuple] = []

    def add(self, t: float, direction: int, remote_ip: bytes, proto: str, dev_port: int, port: int,
            size: int, flags: int = 0, src_ip: bytes | None = None, remote_mac: bytes = GATEWAY_MAC) -> None:
        """One packet; ``src_ip`` spoofs the device's address on a sent packet."""
        dev = (self.device.mac, src_ip or self.ip, dev_port)
        far = (remote_mac, remote_ip, port)
        (smac, sip, sport), (dmac, dip, dport) = (dev, far) if direction == OUT else (far, dev)
        self.rows.append((t, smac, dmac, sip, dip, proto, sport, dport, int(size), flags))

    def port(self) -> int:
        """A fresh ephemeral port (Linux range)."""
        return int(self.rng.integers(32768, 61000))

    def rtt(self, host_ip: bytes) -> float:
        """One round-trip: a few ms on the LAN, tens to hundreds of ms to the Internet."""
        if host_ip == _ip(GATEWAY_IP):
            return float(self.rng.uniform(0.001, 0.004))
        return float(self.rng.lognormal(np.log(0.08), 0.5))

    def window(self, t0: float, t1: float) -> list[tuple]:
        """Captured packets (t0 ≤ t < t1) in time order (ties keep generation order)."""
        return sorted((r for r in self.rows if t0 <= r[0] < t1), key=lambda r: r[0])


# -------------------------------------------------------------------------- benign


def _tcp_flags(size: int, index: int) -> int:
    if size == 74 and index < 2:
        return _SYN if index == 0 else _SYN | _ACK
    return _ACK if size <= 66 else _PSH | _ACK


def _periodic(cap: _Capture, p: Periodic, t0: float, t1: float) -> None:
    rng = cap.rng
    host = _ip(HOSTS[p.host])
    port = p.device_port or (cap.port() if p.persistent else 0)
    remote_mac = _SSDP_MAC if p.host == "ssdp" else GATEWAY_MAC
    t = t0 + rng.uniform(0, p.period)
    while t < t1:
        dev_port = port or cap.port()
        rtt, now, last = cap.rtt(host), t, p.steps[0][0]
        for i, (direction, lo, hi) in enumerate(p.steps):
            now += rtt / 2 if direction != last else rng.uniform(0.0002, 0.002)
            last = direction
            size = int(rng.integers(lo, hi + 1))
            if p.proto == "arp":
                # The gateway asks (broadcast) who has the device's address; the device answers.
                cap.add(now, direction, host, "arp", -1, -1, size, _ARP_REQUEST if direction == IN else _ARP_REPLY)
            else:
                flags = _tcp_flags(size, i) if p.proto == "tcp" else 0
                port_far = p.port if p.host != "ssdp" or direction == OUT else 1900
                cap.add(now, direction, host, p.proto, dev_port, port_far, size, flags, remote_mac=remote_mac)
        t += p.period * max(0.1, 1 + p.jitter * rng.standard_normal())


def _segments(n_bytes: int, header: int = 66) -> list[int]:
    """Wire sizes of the segments carrying ``n_bytes`` (full 1,514-byte frames, then the rest)."""
    full, rest = divmod(int(n_bytes), _MSS)
    return [_MSS + header] * full + ([max(rest + header, 60)] if rest else [])


def _send(cap: _Capture, t: float, direction: int, host: bytes, dev_port: int, port: int, n_bytes: int,
          rtt: float) -> float:
    """TCP data one way, paced in windows of 10 segments per RTT, every second one ACKed."""
    rng = cap.rng
    for k, size in enumerate(_segments(n_bytes)):
        t += rtt if k and k % 10 == 0 else rng.uniform(0.0001, 0.0006)
        cap.add(t, direction, host, "tcp", dev_port, port, size, _PSH | _ACK)
        if k % 2 == 1:
            cap.add(t + rtt / 2, 1 - direction, host, "tcp", dev_port, port, 66, _ACK)
    return t + rtt


def _tcp_session(cap: _Capture, t: float, host: bytes, port: int, up: int, down: int) -> float:
    """A TLS connection: handshake, ``up`` bytes sent, ``down`` received, close; returns its end."""
    rng, rtt, dev_port = cap.rng, cap.rtt(host), cap.port()
    cap.add(t, OUT, host, "tcp", dev_port, port, 74, _SYN)
    cap.add(t + rtt, IN, host, "tcp", dev_port, port, 74, _SYN | _ACK)
    t += rtt + 0.0002
    cap.add(t, OUT, host, "tcp", dev_port, port, 66, _ACK)
    cap.add(t + 0.0003, OUT, host, "tcp", dev_port, port, int(rng.integers(260, 600)), _PSH | _ACK)  # ClientHello
    t = _send(cap, t + 0.0003 + rtt / 2, IN, host, dev_port, port, int(rng.integers(2500, 4500)), rtt)  # certificates
    cap.add(t, OUT, host, "tcp", dev_port, port, int(rng.integers(130, 200)), _PSH | _ACK)  # key exchange
    cap.add(t + rtt, IN, host, "tcp", dev_port, port, int(rng.integers(110, 130)), _PSH | _ACK)
    t = _send(cap, t + rtt, OUT, host, dev_port, port, up, rtt)
    t = _send(cap, t, IN, host, dev_port, port, down, rtt)
    cap.add(t, OUT, host, "tcp", dev_port, port, 66, _FIN | _ACK)
    cap.add(t + rtt, IN, host, "tcp", dev_port, port, 66, _FIN | _ACK)
    cap.add(t + rtt + 0.0002, OUT, host, "tcp", dev_port, port, 66, _ACK)
    return t + rtt


def _video(cap: _Capture, t: float, s: Sessions) -> None:
    """A live stream: frames split into packets back to back, ACKs or RTCP coming back."""
    rng = cap.rng
    host = _ip(HOSTS[s.host])
    tcp = s.kind == "video_tcp"
    rtt = cap.rtt(host)
    dev_port = cap.port()
    if tcp:
        cap.add(t, OUT, host, "tcp", dev_port, s.port, 74, _SYN)
        cap.add(t + rtt, IN, host, "tcp", dev_port, s.port, 74, _SYN | _ACK)
        cap.add(t + rtt + 0.0002, OUT, host, "tcp", dev_port, s.port, 66, _ACK)
        t += rtt
    duration = rng.uniform(*s.duration)
    n_frames = int(duration * s.fps)
    for k in range(n_frames):
        start = t + k / s.fps + rng.normal(0, 0.003)
        n_bytes = rng.integers(*s.i_frame) if k % s.gop == 0 else rng.integers(*s.p_frame)
        sizes = _segments(n_bytes, 66) if tcp else _segments(n_bytes, 54)  # UDP: 42 + 12-byte RTP header
        for j, size in enumerate(sizes):
            at = start + j * rng.uniform(0.0001, 0.0004)
            if tcp:
                cap.add(at, OUT, host, "tcp", dev_port, s.port, size, _PSH | _ACK)
                if j % 2 == 1:
                    cap.add(at + rtt / 2, IN, host, "tcp", dev_port, s.port, 66, _ACK)
            else:
                cap.add(at, OUT, host, "udp", dev_port, s.port, size)
    end = t + n_frames / s.fps
    if not tcp:  # RTCP sender and receiver reports, about once a second
        for at in np.arange(t + rng.uniform(0, 1), end, 1.0):
            cap.add(at, OUT, host, "udp", dev_port + 1, s.port + 1, int(rng.integers(94, 110)))
            cap.add(at + rtt / 2 + rng.uniform(0, 0.5), IN, host, "udp", dev_port + 1, s.port + 1,
                    int(rng.integers(74, 94)))
    if s.audio_pps:
        for at in np.arange(t, end, 1.0 / s.audio_pps):
            cap.add(at + rng.normal(0, 0.002), OUT, host, "udp", dev_port + 2, s.port + 2,
                    int(rng.integers(180, 230)))
    if tcp:
        cap.add(end, OUT, host, "tcp", dev_port, s.port, 66, _FIN | _ACK)
        cap.add(end + rtt, IN, host, "tcp", dev_port, s.port, 66, _FIN | _ACK)


def _benign(cap: _Capture, t0: float, t1: float) -> None:
    """The device's own traffic over [t0, t1) (packets may spill past t1; they are cut later)."""
    for p in cap.device.periodic:
        _periodic(cap, p, t0, t1)
    for s in cap.device.sessions:
        t = t0 + cap.rng.exponential(s.mean_gap)
        while t < t1:
            if s.kind == "upload":
                _tcp_session(cap, t, _ip(HOSTS[s.host]), s.port, int(cap.rng.integers(*s.up)),
                             int(cap.rng.integers(*s.down)))
            else:
                _video(cap, t, s)
            t += cap.rng.exponential(s.mean_gap)


# -------------------------------------------------------------------------- botnets


def _public_ips(rng: np.random.Generator, n: int) -> list[bytes]:
    """Random scan targets in 1.0.0.0-223.255.255.255, avoiding 10/8, 127/8 and 192.168/16."""
    first = rng.integers(1, 224, size=n)
    first = np.where(np.isin(first, (10, 127, 192)), first + 1, first)
    rest = rng.integers(0, 256, size=(n, 3))
    return [bytes((int(a), *map(int, r))) for a, r in zip(first, rest)]


def _cnc(cap: _Capture, family: str, t0: float, t1: float, t_command: float) -> None:
    """The bot's C&C connection: keep-alives every minute, the attack command at ``t_command``."""
    rng = cap.rng
    host, port = _ip(_CNC[family][0]), _CNC[family][1]
    dev_port, rtt = cap.port(), cap.rtt(host)
    for t in np.arange(t0 + rng.uniform(0, 60), t1, 60.0):
        if family == "mirai":  # the bot sends two zero bytes, the C&C echoes them
            cap.add(t, OUT, host, "tcp", dev_port, port, 68, _PSH | _ACK)
            cap.add(t + rtt, IN, host, "tcp", dev_port, port, 68, _PSH | _ACK)
        else:  # BASHLITE: the server sends PING, the bot answers PONG
            cap.add(t, IN, host, "tcp", dev_port, port, 71, _PSH | _ACK)
            cap.add(t + 0.001, OUT, host, "tcp", dev_port, port, 71, _PSH | _ACK)
            cap.add(t + rtt, IN, host, "tcp", dev_port, port, 66, _ACK)
    cap.add(t_command, IN, host, "tcp", dev_port, port, int(rng.integers(95, 140)), _PSH | _ACK)
    cap.add(t_command + 0.0005, OUT, host, "tcp", dev_port, port, 66, _ACK)


def _attack_times(rng, rate: float, on: float, off: float, n: int, t: float) -> np.ndarray:
    """Send times of ``n`` packets at ``rate`` per second in on/off cycles starting at ``t``."""
    k = np.arange(n)
    per_on = max(int(round(rate * on)), 1)
    cycle, within = divmod(k, per_on)
    base = t + cycle * (on + off) + within / rate
    return base + rng.uniform(0, 0.5 / rate, size=n)


def _telnet_login(cap: _Capture, t: float, host: bytes) -> None:
    """A brute-force telnet login on a scanned host that answered, then the report."""
    rtt, dev_port = cap.rtt(host), cap.port()
    cap.add(t, OUT, host, "tcp", dev_port, 23, 74, _SYN)
    cap.add(t + rtt, IN, host, "tcp", dev_port, 23, 74, _SYN | _ACK)
    t += rtt
    cap.add(t, OUT, host, "tcp", dev_port, 23, 66, _ACK)
    for _ in range(4):  # prompt, credentials
        t += rtt
        cap.add(t, IN, host, "tcp", dev_port, 23, int(cap.rng.integers(70, 100)), _PSH | _ACK)
        cap.add(t + 0.3, OUT, host, "tcp", dev_port, 23, int(cap.rng.integers(68, 80)), _PSH | _ACK)
        t += 0.3
    cap.add(t + rtt, OUT, host, "tcp", dev_port, 23, 66, _FIN | _ACK)
    cap.add(t + 2 * rtt, IN, host, "tcp", dev_port, 23, 66, _FIN | _ACK)


def _attack(cap: _Capture, family: str, name: str, times: np.ndarray) -> None:
    """Packets of one attack at the given send times."""
    rng = cap.rng
    n = len(times)
    victim = _ip(_VICTIM)
    ports = rng.integers(1024, 65536, size=(n, 2))
    ts = times.tolist()
    if name == "scan":
        targets = _public_ips(rng, n)
        answer = rng.random(n)
        for i, t in enumerate(ts):
            host, sport = targets[i], int(ports[i, 0])
            dport = 23 if family == "gafgyt" or answer[i] < 0.9 else 2323
            rtt = cap.rtt(host)
            if family == "mirai":  # raw-socket SYN, no options: 54 bytes, padded to 60
                cap.add(t, OUT, host, "tcp", sport, dport, 60, _SYN)
            else:  # connect(): the kernel's SYN with options, retransmitted after 1 s and 3 s
                cap.add(t, OUT, host, "tcp", sport, dport, 74, _SYN)
            if answer[i] < 0.03:
                cap.add(t + rtt, IN, host, "tcp", sport, dport, 60, _RST | _ACK)
            elif answer[i] < 0.035:
                cap.add(t + rtt, IN, host, "tcp", sport, dport, 60 if family == "mirai" else 74, _SYN | _ACK)
                if family == "mirai":
                    cap.add(t + rtt + 0.0001, OUT, host, "tcp", sport, dport, 60, _RST)
                _telnet_login(cap, t + rtt + 0.05, host)
                if family == "mirai":
                    _tcp_session(cap, t + rtt + 5.0, _ip(_MIRAI_REPORT[0]), _MIRAI_REPORT[1], 20, 0)
            elif family == "gafgyt":
                for back_off in (1.0, 3.0):
                    cap.add(t + back_off, OUT, host, "tcp", sport, dport, 74, _SYN)
    elif family == "mirai" and name == "ack":  # random ports, 512 random bytes
        for i, t in enumerate(ts):
            cap.add(t, OUT, victim, "tcp", int(ports[i, 0]), int(ports[i, 1]), 566, _ACK)
    elif family == "mirai" and name == "syn":  # SYN with options from random ports
        rst = rng.random(n) < 0.05
        for i, t in enumerate(ts):
            cap.add(t, OUT, victim, "tcp", int(ports[i, 0]), int(ports[i, 1]), 74, _SYN)
            if rst[i]:
                cap.add(t + 0.05, IN, victim, "tcp", int(ports[i, 0]), int(ports[i, 1]), 60, _RST | _ACK)
    elif family == "mirai" and name == "udp":  # raw UDP, random ports, 512 bytes
        for i, t in enumerate(ts):
            cap.add(t, OUT, victim, "udp", int(ports[i, 0]), int(ports[i, 1]), 554)
    elif family == "mirai" and name == "udpplain":  # one connected UDP socket, 512 bytes
        sport, dport = cap.port(), int(rng.integers(1, 65536))
        for t in ts:
            cap.add(t, OUT, victim, "udp", sport, dport, 554)
    elif name in ("tcp", "udp"):  # BASHLITE raw floods from spoofed sources, tiny packets
        spoofed = _public_ips(rng, n)
        proto = name
        flags = _SYN | _ACK | _PSH | _URG if name == "tcp" else 0
        dport = 80 if name == "tcp" else 0
        for i, t in enumerate(ts):
            cap.add(t, OUT, victim, proto, int(ports[i, 0]), dport or int(ports[i, 1]), 60, flags,
                    src_ip=spoofed[i])
    elif name == "junk":  # spam over a few open connections, the victim ACKs every second one
        conns = [cap.port() for _ in range(8)]
        for k, sport in enumerate(conns):
            t = ts[0] - 0.1 + 0.001 * k
            cap.add(t, OUT, victim, "tcp", sport, 80, 74, _SYN)
            cap.add(t + 0.05, IN, victim, "tcp", sport, 80, 74, _SYN | _ACK)
            cap.add(t + 0.0502, OUT, victim, "tcp", sport, 80, 66, _ACK)
        for i, t in enumerate(ts):
            sport = conns[i % len(conns)]
            cap.add(t, OUT, victim, "tcp", sport, 80, 1090, _PSH | _ACK)
            if (i // len(conns)) % 2:
                cap.add(t + 0.05, IN, victim, "tcp", sport, 80, 66, _ACK)
    elif name == "combo":  # open a connection, spam it, drop it; again and again
        for i, t in enumerate(ts[::4]):
            sport = int(ports[i, 0])
            cap.add(t, OUT, victim, "tcp", sport, 80, 74, _SYN)
            cap.add(t + 0.05, IN, victim, "tcp", sport, 80, 74, _SYN | _ACK)
            cap.add(t + 0.0502, OUT, victim, "tcp", sport, 80, 66, _ACK)
            cap.add(t + 0.0505, OUT, victim, "tcp", sport, 80, 1090, _PSH | _ACK)
            cap.add(t + 0.051, OUT, victim, "tcp", sport, 80, 60, _RST)
    else:
        raise ValueError(f"unknown attack {family}.{name}")


def _levels(seed: int, index: int, family: str) -> dict[str, str]:
    """Which attack of the family is a flood, a burst or mild on this device (seeded)."""
    rng = np.random.default_rng([seed, index, 1000 + len(family)])
    return dict(zip(ATTACKS[family], rng.permutation(_LEVEL_DRAW).tolist()))


# -------------------------------------------------------------------------- output


def _frame(smac, dmac, sip, dip, proto, sport, dport, size, flags) -> bytes:
    """Ethernet frame bytes of ``size`` on the wire (zero payload, padded to 60 bytes)."""
    if proto == "arp":
        arp = dpkt.arp.ARP(sha=smac, spa=sip, tha=dmac if flags == _ARP_REPLY else bytes(6), tpa=dip, op=flags)
        eth = dpkt.ethernet.Ethernet(src=smac, dst=_BROADCAST if flags == _ARP_REQUEST else dmac,
                                     type=dpkt.ethernet.ETH_TYPE_ARP, data=arp)
    else:
        if proto == "tcp":
            opts = _SYN_OPTS if flags & _SYN and size >= 74 else _TS_OPTS if size >= 66 else b""
            seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=0, opts=opts,
                               data=bytes(max(size - 54 - len(opts), 0)))
            seg.off = 5 + len(opts) // 4
        else:
            seg = dpkt.udp.UDP(sport=sport, dport=dport, data=bytes(max(size - 42, 0)))
            seg.ulen = len(seg)
        net = dpkt.ip.IP(src=sip, dst=dip, p=_IP_PROTO[proto], ttl=64, data=seg)
        net.len = len(net)
        eth = dpkt.ethernet.Ethernet(src=smac, dst=dmac, type=dpkt.ethernet.ETH_TYPE_IP, data=net)
    raw = bytes(eth)
    return raw + bytes(60 - len(raw)) if len(raw) < 60 else raw


def _write_pcap(path: Path, rows: list[tuple]) -> None:
    cache: dict = {}
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535)
        for row in rows:
            key = row[1:]
            frame = cache.get(key)
            if frame is None:
                frame = cache[key] = _frame(*key)
            writer.writepkt(frame, ts=row[0])


def _write_csv(path: Path, rows: np.ndarray) -> None:
    with FeatureWriter(path) as out:
        out.write(rows)


def _scenarios(device: DeviceProfile) -> list[tuple[str, str]]:
    """(family, attack) pairs of a device's captures; ("benign", "") first."""
    families = ("gafgyt", "mirai") if device.mirai else ("gafgyt",)
    return [("benign", "")] + [(fam, name) for fam in families for name in ATTACKS[fam]]


def _relpath(device: DeviceProfile, family: str, name: str) -> str:
    if family == "benign":
        return f"{device.name}/benign_traffic"
    return f"{device.name}/{family}_attacks/{name}"


def _simulate_one(device: DeviceProfile, index: int, scenario: int, family: str, name: str, seed: int,
                  scale: float, level: str | None) -> tuple[list[tuple], dict]:
    """Packets of one capture and what was simulated in it."""
    rng = np.random.default_rng([seed, index, scenario])
    cap = _Capture(device, rng)
    t0 = _EPOCH + scenario * _DAY + index * 3600.0 + float(rng.uniform(0, 600))
    if family == "benign":
        t1 = t0 + max(scale * device.benign_seconds, 1.0)
        _benign(cap, t0, t1)
        return cap.window(t0, t1), {"seconds": round(t1 - t0, 3)}
    factor, on, off, n_base = _LEVELS[level]
    rate = factor if factor > 1 else factor * _FLOOD_PPS[family, name] * device.cpu
    n = max(int(round(scale * n_base)), 10)
    t_command = t0 + _LEAD
    times = _attack_times(rng, rate, on, off, n, t_command + 0.2)
    t1 = float(times[-1]) + 1.0
    _benign(cap, t0, t1)
    _cnc(cap, family, t0, t1, t_command)
    _attack(cap, family, name, times)
    info = {"seconds": round(t1 - t0, 3), "intensity": level, "attack_pps": round(rate, 1),
            "attack_on_s": on, "attack_off_s": off, "attack_sends": n}
    return cap.window(t0, t1), info


def simulate_network(out_dir: str | os.PathLike, seed: int = 0, scale: float = 1.0,
                     progress: Progress | None = None) -> Path:
    """Simulate the nine-device IoT network; write pcaps and N-BaIoT features (UCI layout).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder (created). Gets ``<Device>/benign_traffic.{pcap,csv}``,
        ``<Device>/gafgyt_attacks/{combo,junk,scan,tcp,udp}.{pcap,csv}`` for every device,
        ``<Device>/mirai_attacks/{ack,scan,syn,udp,udpplain}.{pcap,csv}`` for the seven
        devices with Mirai captures in N-BaIoT, and ``SIMULATION.json``. Existing files of
        those names are overwritten; other files are left alone.
    seed : int, default 0
        Random seed; the same seed and scale write byte-identical files.
    scale : float, default 1.0
        Size of the data set: seconds of benign capture and attack packets are proportional
        to it. At 1.0: 2,400-10,000 s of benign traffic per device (about 2,500-7,000
        rows), 300-1,000 attack packets per attack file plus background.
    progress : callable, optional
        Called as ``progress(done, total, label)`` after each capture is written.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Notes
    -----
    The CSVs are read by ``fedcl.data.read_dataset(out_dir, "uci")``. Features are
    extracted from the written pcaps with the default :class:`FeatureExtractor`
    (``first_jitter_from_epoch=False``). ``SIMULATION.json`` records the seed, scale,
    fedcl version, and per file its row count, capture length and attack intensity.
    """
    from fedcl import __version__

    if not np.isfinite(scale) or scale <= 0:
        raise ConfigError(f"scale must be a positive number, got {scale}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for index, device in enumerate(DEVICES):
        levels = {fam: _levels(seed, index, fam) for fam in ATTACKS}
        for scenario, (family, name) in enumerate(_scenarios(device)):
            jobs.append((device, index, scenario, family, name, levels.get(family, {}).get(name)))
    files = {}
    for done, (device, index, scenario, family, name, level) in enumerate(jobs, start=1):
        rows, info = _simulate_one(device, index, scenario, family, name, seed, scale, level)
        rel = _relpath(device, family, name)
        pcap, csv = out / f"{rel}.pcap", out / f"{rel}.csv"
        pcap.parent.mkdir(parents=True, exist_ok=True)
        _write_pcap(pcap, rows)
        features = extract_features(pcap).to_numpy()
        _write_csv(csv, features)
        files[f"{rel}.csv"] = {"rows": len(features), "pcap": f"{rel}.pcap", **info}
        if progress is not None:
            progress(done, len(jobs), rel)
    meta = {
        "generator": "fedcl.traffic.simulate_network",
        "fedcl_version": __version__,
        "seed": seed,
        "scale": scale,
        "first_jitter_from_epoch": False,
        "devices": {d.name: {"mac": d.mac.hex(":"), "ip": d.ip, "mirai": d.mirai, "gafgyt": True}
                    for d in DEVICES},
        "rows": sum(f["rows"] for f in files.values()),
        "files": files,
    }
    (out / "SIMULATION.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out
