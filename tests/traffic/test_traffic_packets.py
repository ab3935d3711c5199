"""Reading pcap and pcapng: fields, keys for non-IP frames, truncated and foreign files, bulk decoding."""

from __future__ import annotations

import struct

import dpkt
import numpy as np
import pytest

from fedcl.data import DataError
from fedcl.traffic import CaptureReader, Packet, PacketBatch, read_packets, write_synthetic_capture
from fedcl.traffic._jit import have_numba
from fedcl.traffic._packets import _decode, _decode_dpkt
from fedcl.traffic._synthetic import _frame

MAC1, MAC2 = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
IP1, IP2 = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"


def _pcap(path, records):
    """Write a little-endian microsecond pcap of (timestamp, wire length, frame) records."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, wire, frame in records:
            f.write(struct.pack("<IIII", int(ts), round(ts % 1 * 1e6), len(frame), wire) + frame)


def test_fields_of_ip_arp_icmp_and_other_frames(tmp_path):
    # Prepare
    v6a, v6b = b"\xfd" + bytes(14) + b"\x01", b"\xfd" + bytes(14) + b"\x02"
    lldp = bytes(dpkt.ethernet.Ethernet(src=MAC1, dst=MAC2, type=0x88CC, data=b"\x00" * 40))
    _pcap(tmp_path / "a.pcap", [
        (1.5, 1514, _frame(MAC1, MAC2, IP1, IP2, "tcp", 4000, 80, b"x" * 10)),  # captured short: 64 < 1514
        (2.25, 0, _frame(MAC2, MAC1, v6b, v6a, "udp", 53, 5353, b"")),
        (3.0, 0, _frame(MAC1, MAC2, IP1, IP2, "icmp", 0, 0, b"ping")),
        (4.0, 0, _frame(MAC1, MAC2, IP1, IP2, "arp", 0, 0, b"")),
        (5.0, 0, lldp),
        (6.0, 10, b"\x00" * 10),  # runt: skipped
    ])

    # Execute
    packets = list(read_packets(tmp_path / "a.pcap"))

    # Assert
    assert len(packets) == 5
    tcp, udp6, icmp, arp, other = packets
    assert (tcp.timestamp, tcp.size, tcp.src_ip, tcp.dst_ip, tcp.src_port, tcp.dst_port) == (1.5, 1514, IP1, IP2, 4000, 80)
    assert (udp6.src_ip, udp6.dst_ip, udp6.src_port, udp6.dst_port, udp6.src_mac) == (v6b, v6a, 53, 5353, MAC2)
    assert (icmp.src_ip, icmp.src_port, icmp.dst_port) == (IP1, -1, -1)
    assert (arp.src_ip, arp.dst_ip, arp.src_port) == (IP1, IP2, -1)
    assert (other.src_ip, other.dst_ip, other.dst_mac) == (MAC1, MAC2, MAC2)


def test_pcapng_reads_like_pcap(tmp_path):
    write_synthetic_capture(tmp_path / "c.pcap", 200, seed=3)
    write_synthetic_capture(tmp_path / "c.pcapng", 200, seed=3, pcapng=True)

    plain, ng = list(read_packets(tmp_path / "c.pcap")), list(read_packets(tmp_path / "c.pcapng"))

    assert len(plain) == len(ng) == 200
    assert [p[1:] for p in plain] == [p[1:] for p in ng]
    assert max(abs(a.timestamp - b.timestamp) for a, b in zip(plain, ng)) < 2e-6


@pytest.mark.parametrize("suffix", ["pcap", "pcapng"])
def test_truncated_capture_yields_intact_packets_then_fails(tmp_path, suffix):
    # Prepare: cut the last record in half
    path = tmp_path / f"c.{suffix}"
    write_synthetic_capture(path, 50, seed=1, pcapng=suffix == "pcapng")
    path.write_bytes(path.read_bytes()[:-30])
    packets = []

    # Execute
    with pytest.raises(DataError) as err:
        for p in read_packets(path):
            packets.append(p)

    # Assert
    assert len(packets) == 49
    assert "read 49 packets" in str(err.value) and "truncated" in str(err.value)
    assert err.value.path == str(path) and "\n" not in str(err.value)


def test_non_capture_file_fails_with_zero_packets(tmp_path):
    path = tmp_path / "notes.pcap"
    path.write_text("MI_dir_L5_weight,MI_dir_L5_mean\n1,60\n")

    with pytest.raises(DataError, match="not a pcap or pcapng file.*read 0 packets"):
        list(read_packets(path))


def test_non_ethernet_link_type_fails(tmp_path):
    path = tmp_path / "raw.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # DLT_RAW

    with pytest.raises(DataError, match="link type 101 is not Ethernet"):
        list(read_packets(path))


def _variants(rng, frames, n):
    """Frames cut short and with header bytes overwritten where the fixed-offset reading branches: the
    Ethernet type, IPv4 version/IHL, total length, fragment field, protocol, IPv6 payload length and next
    header, and the TCP data offset (with and without IPv4 options)."""
    offsets = [12, 13, 14, 16, 17, 18, 19, 20, 21, 23, 32, 34 + 12, 54 + 12, 58 + 12]
    for _ in range(n):
        frame = bytearray(frames[rng.integers(len(frames))])
        for _ in range(rng.integers(1, 4)):
            at = offsets[rng.integers(len(offsets))]
            if at < len(frame):
                frame[at] = int(rng.choice([0, 1, 5, 6, 17, 0x20, 0x45, 0x46, 0x4F, 0x60, 0x86, 0xDD, 0xFF,
                                            rng.integers(256)]))
        if rng.random() < 0.3:
            frame = frame[: rng.integers(len(frame) + 1)]
        yield bytes(frame)


def _base_frames() -> list[bytes]:
    """v4/v6 TCP/UDP/ICMP, ARP, an IPv4 header with options and a VLAN tag (left to dpkt)."""
    v6a, v6b = b"\xfd" + bytes(14) + b"\x01", b"\xfd" + bytes(14) + b"\x02"
    base = [_frame(MAC1, MAC2, IP1, IP2, kind, 4000, 80, b"p" * 30) for kind in ("tcp", "udp", "icmp", "arp")]
    base += [_frame(MAC1, MAC2, v6a, v6b, kind, 4000, 80, b"p" * 30) for kind in ("tcp", "udp", "icmp")]
    ip = dpkt.ip.IP(src=IP1, dst=IP2, p=6, opts=b"\x01" * 8, data=dpkt.tcp.TCP(sport=1, dport=2, data=b"q" * 9))
    ip.len = len(ip)
    base.append(bytes(dpkt.ethernet.Ethernet(src=MAC1, dst=MAC2, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)))
    base.append(base[0][:12] + b"\x81\x00\x00\x07" + base[0][12:])  # 802.1Q tag
    return base


def test_fixed_offset_decoding_reads_every_frame_as_dpkt():
    # Prepare: the base frames, then 20,000 variants
    base = _base_frames()
    rng = np.random.default_rng(0)

    # Execute / Assert
    for frame in base + list(_variants(rng, base, 20_000)):
        assert _decode(1.0, 60, frame) == _decode_dpkt(1.0, 60, frame), frame.hex()


# -- bulk decoding (CaptureReader.batches): numba loops, or struct and numpy without numba -----------------

@pytest.fixture(params=["numba", "struct+numpy"])
def reader_path(request, monkeypatch):
    """CaptureReader on numba's loops (fedcl.traffic._scan), then as the edge install (no numba) runs it."""
    if request.param == "numba" and not have_numba():
        pytest.skip("numba is not installed")
    if request.param != "numba":
        monkeypatch.setattr("fedcl.traffic._jit.have_numba", lambda: False)
    return request.param


def _edge_frames():
    """The frames of test_fixed_offset_decoding_reads_every_frame_as_dpkt and their damaged variants, plus
    ARP and ICMPv6 frames cut at every length (where fixed-offset reading hands over to dpkt)."""
    base = _base_frames()
    cuts = [frame[:n] for frame in (base[3], base[6]) for n in range(len(frame) + 1)]
    return base + cuts + list(_variants(np.random.default_rng(1), base, 5_000))


def test_bulk_decoding_reads_every_frame_as_dpkt(tmp_path, reader_path):
    # Prepare
    frames = _edge_frames()
    _pcap(tmp_path / "e.pcap", [(1.0 + i, 60 + i, frame) for i, frame in enumerate(frames)])
    expected = [_decode_dpkt(1.0 + i, 60 + i, frame) for i, frame in enumerate(frames)]

    # Execute
    reader = CaptureReader(tmp_path / "e.pcap")
    packets = list(reader)

    # Assert: dpkt's fields frame for frame; the runts dpkt cannot read are skipped and counted
    assert packets == [p for p in expected if p is not None]
    assert reader.n_skipped == sum(p is None for p in expected) > 0


def test_batches_hold_the_packets_read_one_by_one_across_block_boundaries(tmp_path, reader_path, monkeypatch):
    # Prepare: 4 kB blocks, so records straddle blocks and a 9 kB frame is longer than one
    write_synthetic_capture(tmp_path / "c.pcap", 3000, seed=4)
    big = _frame(MAC1, MAC2, IP1, IP2, "udp", 1, 2, b"j" * 9000)
    with open(tmp_path / "c.pcap", "ab") as f:
        f.write(struct.pack("<IIII", 1_600_000_000, 5, len(big), len(big)) + big)
    expected = [_decode(p_ts, wire, frame) for p_ts, wire, frame in _records(tmp_path / "c.pcap")]
    monkeypatch.setattr("fedcl.traffic._packets._BLOCK", 4096)

    # Execute
    batches = list(CaptureReader(tmp_path / "c.pcap").batches(size=500))

    # Assert
    assert max(len(b) for b in batches) <= 500 and len(batches) > 100  # a batch ends with its block
    assert [p for b in batches for p in b] == expected
    assert expected[-1].size == len(big) and len(expected) == 3001


def _records(path):
    """(timestamp, wire length, frame) of a little-endian microsecond pcap, read the plain way."""
    data = path.read_bytes()
    pos, out = 24, []
    while pos < len(data):
        sec, frac, caplen, wire = struct.unpack_from("<IIII", data, pos)
        out.append((sec + frac / 1e6, wire, data[pos + 16: pos + 16 + caplen]))
        pos += 16 + caplen
    return out


@pytest.mark.parametrize("damage", ["header", "record", "corrupt"])
def test_damage_after_a_block_boundary_yields_the_intact_batches_first(tmp_path, reader_path, monkeypatch, damage):
    # Prepare: 300 packets in 4 kB blocks, then a cut record header, a cut record or an absurd length
    path = tmp_path / "c.pcap"
    write_synthetic_capture(path, 300, seed=2)
    tail = {"header": b"\x00" * 9, "record": struct.pack("<IIII", 1, 0, 100, 100) + b"x" * 40,
            "corrupt": struct.pack("<IIII", 1, 0, 1 << 30, 60) + b"x" * 60}[damage]
    path.write_bytes(path.read_bytes() + tail)
    monkeypatch.setattr("fedcl.traffic._packets._BLOCK", 4096)
    reader, packets = CaptureReader(path), []

    # Execute
    with pytest.raises(DataError) as err:
        for batch in reader.batches(size=64):
            packets.extend(batch)

    # Assert
    assert len(packets) == 300 and reader.n_packets == 300
    assert "read 300 packets" in str(err.value)
    assert ("corrupt" if damage == "corrupt" else "truncated") in str(err.value)


def test_packet_batch_round_trips_packets(tmp_path):
    write_synthetic_capture(tmp_path / "c.pcap", 500, seed=6)
    packets = list(read_packets(tmp_path / "c.pcap"))
    odd = Packet(2.0, 70, MAC1, MAC2, b"\x01" * 6, b"\x02" * 5, -1, 7)  # MAC-as-IP, lengths that differ

    batch = PacketBatch.from_packets(packets + [odd])

    assert list(batch) == packets + [odd]
    assert list(batch[10:20]) == packets[10:20]
    assert list(PacketBatch.concat([batch[:3], batch[3:]])) == packets + [odd]
    assert len(PacketBatch.from_packets([])) == 0
