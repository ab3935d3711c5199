"""Synthetic Ethernet captures for tests and benchmarks, written with dpkt."""

from __future__ import annotations

import os

import dpkt
import numpy as np

__all__ = ["write_synthetic_capture"]


def _frame(src_mac, dst_mac, src_ip, dst_ip, kind, sport, dport, payload):
    """Bytes of one Ethernet frame; ``kind`` is "tcp", "udp", "icmp" or "arp"."""
    if kind == "arp":
        arp = dpkt.arp.ARP(sha=src_mac, spa=src_ip, tha=b"\x00" * 6, tpa=dst_ip)
        return bytes(dpkt.ethernet.Ethernet(src=src_mac, dst=dst_mac, type=dpkt.ethernet.ETH_TYPE_ARP, data=arp))
    if kind == "tcp":
        seg = dpkt.tcp.TCP(sport=sport, dport=dport, data=payload)
    elif kind == "udp":
        seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        seg.ulen = len(seg)
    else:
        seg = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=payload))
    if len(src_ip) == 16:
        nxt = {"tcp": 6, "udp": 17, "icmp": 58}[kind]
        net = dpkt.ip6.IP6(src=src_ip, dst=dst_ip, nxt=nxt, hlim=64, data=seg, plen=len(seg))
        etype = dpkt.ethernet.ETH_TYPE_IP6
    else:
        proto = {"tcp": 6, "udp": 17, "icmp": 1}[kind]
        net = dpkt.ip.IP(src=src_ip, dst=dst_ip, p=proto, ttl=64, data=seg)
        net.len = len(net)
        etype = dpkt.ethernet.ETH_TYPE_IP
    return bytes(dpkt.ethernet.Ethernet(src=src_mac, dst=dst_mac, type=etype, data=net))


def write_synthetic_capture(path: str | os.PathLike, n_packets: int, *, seed: int = 0, n_hosts: int = 20,
                            n_sockets: int = 300, start: float = 1.5e9, rate: float = 200.0,
                            pcapng: bool = False) -> None:
    """Write a random capture of IoT-like traffic between a few hosts.

    Parameters
    ----------
    path : str or os.PathLike
        File to write.
    n_packets : int
        Packets to write.
    seed : int, default 0
        Random seed; the same arguments write the same file.
    n_hosts : int, default 20
        Hosts (one MAC each; every fifth one speaks IPv6).
    n_sockets : int, default 300
        Distinct flows (src IP:port → dst IP:port, TCP, UDP, ICMP or ARP); about half the
        packets answer a previous packet (reverse direction), so channels have both ways.
    start : float, default 1.5e9
        Timestamp of the first packet (Unix seconds).
    rate : float, default 200.0
        Mean packets per second (exponential gaps).
    pcapng : bool, default False
        Write pcapng instead of pcap.
    """
    rng = np.random.default_rng(seed)
    macs = [bytes([2, 0, 0, 0, i // 256, i % 256]) for i in range(n_hosts)]
    ips = [(b"\xfd" + bytes(13) + bytes([i // 256, i % 256])) if i % 5 == 4 else bytes([10, 0, i // 256, i % 256])
           for i in range(n_hosts)]
    flows = []
    for _ in range(n_sockets):
        a, b = rng.choice(n_hosts, size=2, replace=False)
        if len(ips[a]) != len(ips[b]):  # no IPv4 ↔ IPv6 flows
            b = a + 5 if a + 5 < n_hosts else a - 5
        kind = rng.choice(["tcp", "udp", "icmp", "arp"], p=[0.5, 0.35, 0.1, 0.05])
        if kind == "arp" and len(ips[a]) == 16:
            kind = "icmp"
        flows.append((int(a), int(b), str(kind), int(rng.integers(1024, 65536)), int(rng.choice([80, 443, 53, 1883, 8080]))))
    popularity = 1.0 / np.arange(1, n_sockets + 1)  # a few heavy flows, many light ones
    popularity /= popularity.sum()
    flow_of = rng.choice(n_sockets, size=n_packets, p=popularity)
    reply = rng.random(n_packets) < 0.5
    sizes = rng.choice([0, 20, 80, 200, 500, 1400], size=n_packets) + rng.integers(0, 40, size=n_packets)
    times = start + np.cumsum(rng.exponential(1.0 / rate, size=n_packets))
    cache: dict = {}
    writer_cls = dpkt.pcapng.Writer if pcapng else dpkt.pcap.Writer
    with open(path, "wb") as f:
        writer = writer_cls(f, snaplen=65535)
        for i in range(n_packets):
            a, b, kind, sport, dport = flows[flow_of[i]]
            if reply[i]:
                a, b, sport, dport = b, a, dport, sport
            key = (a, b, kind, sport, dport, int(sizes[i]))
            frame = cache.get(key)
            if frame is None:
                frame = cache[key] = _frame(macs[a], macs[b], ips[a], ips[b], kind, sport, dport, bytes(int(sizes[i])))
            writer.writepkt(frame, ts=float(times[i]))
