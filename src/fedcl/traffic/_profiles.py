"""Benign behaviour of the nine N-BaIoT devices, as parameters for the network simulator.

Each device is described by what it does on the wire, not by its feature values:

- :class:`Periodic` exchanges: heartbeats and keep-alives to its cloud or P2P relays, DNS
  look-ups to the gateway, NTP, SSDP/ONVIF announcements, ARP. A period with jitter, and a
  short sequence of packets (direction, size range) each time.
- :class:`Sessions`: Poisson events (a doorbell press, motion, a parent opening the baby
  monitor's app, someone watching a camera) that open a burst: a TLS upload over a new TCP
  connection, or a live video stream (I/P frames split into 1,514-byte frames, TCP ACKs or
  RTCP reports coming back).

Sizes are Ethernet wire lengths without FCS (60 to 1,514 bytes). The numbers are plausible
for each class of device (a doorbell is silent most of the time, a baby monitor streams
audio and video for minutes) and were tuned so that the extracted features land in the
same orders of magnitude as the real N-BaIoT rows (see docs/simulated-network.md); they are
not measurements of those devices.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEVICES", "DeviceProfile", "Periodic", "Sessions", "HOSTS", "GATEWAY_IP", "GATEWAY_MAC"]

OUT, IN = 0, 1

#: The LAN gateway (also the DNS forwarder), and the Internet hosts devices talk to.
GATEWAY_MAC = bytes.fromhex("a0f3c1000001")
GATEWAY_IP = "192.168.1.1"
HOSTS = {
    "gateway": GATEWAY_IP,
    "ntp": "162.159.200.1",
    "ntp2": "216.239.35.0",
    "ssdp": "239.255.255.250",
    "p2p_a": "47.88.21.10",
    "p2p_b": "47.91.93.20",
    "p2p_c": "120.24.37.30",
    "doorbell_cloud": "52.28.14.91",
    "ecobee_cloud": "34.196.41.7",
    "ennio_cloud": "121.40.128.55",
    "philips_relay": "54.77.153.40",
    "philips_cloud": "54.229.12.8",
    "provision_cloud": "185.18.148.22",
    "samsung_xmpp": "52.58.170.3",
    "samsung_stream": "52.58.170.77",
    "simplehome_cloud": "13.229.81.14",
    "viewer": "93.184.40.12",  # a phone on the Internet watching a stream
}


@dataclass(frozen=True)
class Periodic:
    """A short exchange repeated every ``period`` seconds.

    Attributes
    ----------
    proto : {"tcp", "udp", "arp"}
    host : str
        Key of :data:`HOSTS`.
    port : int
        Server port.
    period : float
        Mean seconds between two exchanges; each gap is ``period · (1 + jitter · N(0, 1))``.
    steps : tuple of (direction, min size, max size)
        Packets of one exchange in order; direction ``0`` = sent by the device, ``1`` =
        received. Consecutive packets are one round-trip (or a few ms) apart.
    jitter : float
        Relative standard deviation of the period.
    persistent : bool
        Same device port for every exchange (a long-lived connection or bound socket);
        otherwise a new ephemeral port each time.
    device_port : int or None
        Fixed device port (NTP's 123, SSDP's 1900); overrides ``persistent``.
    """

    proto: str
    host: str
    port: int
    period: float
    steps: tuple[tuple[int, int, int], ...]
    jitter: float = 0.05
    persistent: bool = True
    device_port: int | None = None


@dataclass(frozen=True)
class Sessions:
    """Bursts opened by Poisson events.

    Attributes
    ----------
    kind : {"upload", "video_udp", "video_tcp"}
        ``upload``: a new TLS connection sending ``up`` bytes and receiving ``down`` bytes.
        ``video_*``: a live stream for ``duration`` seconds at ``fps`` frames per second, an
        I-frame every ``gop`` frames; over TCP every second segment is ACKed, over UDP the
        receiver sends an RTCP report about once a second.
    host, port : str, int
        Server (key of :data:`HOSTS`) and its port.
    mean_gap : float
        Mean seconds between two events.
    up, down : (int, int)
        Byte ranges for uploads.
    duration : (float, float)
        Stream length range, seconds.
    fps, gop : float, int
    p_frame, i_frame : (int, int)
        Frame size ranges, bytes.
    audio_pps : float
        Extra small audio packets per second during a stream (0: none).
    """

    kind: str
    host: str
    port: int
    mean_gap: float
    up: tuple[int, int] = (0, 0)
    down: tuple[int, int] = (0, 0)
    duration: tuple[float, float] = (0.0, 0.0)
    fps: float = 0.0
    gop: int = 1
    p_frame: tuple[int, int] = (0, 0)
    i_frame: tuple[int, int] = (0, 0)
    audio_pps: float = 0.0


@dataclass(frozen=True)
class DeviceProfile:
    """One device: addresses, benign behaviour, and the botnets that infect it.

    Attributes
    ----------
    name : str
        N-BaIoT device name (the UCI folder name).
    mac : bytes
        6-byte MAC address.
    ip : str
        LAN address.
    benign_seconds : float
        Seconds of benign capture at ``scale=1``.
    periodic, sessions : tuples of Periodic, Sessions
    mirai : bool
        Whether the device has Mirai captures (Ecobee and the Samsung webcam do not, as in
        N-BaIoT); every device has BASHLITE captures.
    cpu : float
        Relative packet rate the device can flood at (1 = 600 packets/s for a Mirai UDP flood).
    """

    name: str
    mac: bytes
    ip: str
    benign_seconds: float
    periodic: tuple[Periodic, ...]
    sessions: tuple[Sessions, ...] = ()
    mirai: bool = True
    cpu: float = 1.0


def _common(dns_period: float, dns_query: int, ntp_period: float, ntp_host: str = "ntp",
            arp_period: float = 120.0) -> tuple[Periodic, ...]:
    """DNS look-ups through the gateway, NTP, and the gateway's ARP refreshes."""
    return (
        Periodic("udp", "gateway", 53, dns_period, ((OUT, dns_query, dns_query + 4),
                                                    (IN, dns_query + 16, dns_query + 180)),
                 jitter=0.3, persistent=False),
        Periodic("udp", ntp_host, 123, ntp_period, ((OUT, 90, 90), (IN, 90, 90)), jitter=0.02,
                 device_port=123),
        Periodic("arp", "gateway", 0, arp_period, ((IN, 60, 60), (OUT, 60, 60)), jitter=0.2),
    )


def _p2p(period: float, out: tuple[int, int], back: tuple[int, int], hosts=("p2p_a", "p2p_b", "p2p_c"),
         port: int = 32100) -> tuple[Periodic, ...]:
    """UDP hole-punching heartbeats to P2P relays (cheap cameras and doorbells)."""
    return tuple(Periodic("udp", h, port, period * (1 + 0.07 * i), ((OUT, *out), (IN, *back)), jitter=0.03)
                 for i, h in enumerate(hosts))


def _tls_keepalive(host: str, port: int, period: float, out: tuple[int, int], back: tuple[int, int],
                   jitter: float = 0.05) -> Periodic:
    """A request/response on a long-lived TLS connection, with the delayed ACKs."""
    return Periodic("tcp", host, port, period, ((OUT, *out), (IN, 66, 66), (IN, *back), (OUT, 66, 66)),
                    jitter=jitter)


def _ssdp(period: float, size: tuple[int, int], n: int = 3) -> Periodic:
    """UPnP/ONVIF announcements to the SSDP multicast group (no answer)."""
    return Periodic("udp", "ssdp", 1900, period, tuple((OUT, *size) for _ in range(n)), jitter=0.1,
                    device_port=1900)


def _mac(i: int) -> bytes:
    # Locally administered unicast addresses: vendor-free but well formed.
    return bytes([0x02, 0x1B, 0x44, 0x11, 0x3A, 0x10 + i])


#: The nine N-BaIoT devices, in the Kaggle file order.
DEVICES: tuple[DeviceProfile, ...] = (
    DeviceProfile(
        "Danmini_Doorbell", _mac(0), "192.168.1.101", 10000.0,
        _common(600, 74, 3600)
        + _p2p(39.0, (102, 102), (98, 98))
        + _p2p(41.0, (102, 102), (98, 98), hosts=("p2p_a", "p2p_b"), port=32101)
        + (Periodic("tcp", "doorbell_cloud", 443, 75.0, ((OUT, 60, 60), (IN, 60, 60)), jitter=0.01),),
        (Sessions("upload", "doorbell_cloud", 443, 6000.0, up=(20_000, 45_000), down=(800, 2_000)),
         Sessions("video_udp", "viewer", 10002, 6000.0, duration=(5, 10), fps=10, gop=20,
                  p_frame=(500, 1_400), i_frame=(6_000, 12_000), audio_pps=8)),
        cpu=0.7,
    ),
    DeviceProfile(
        "Ecobee_Thermostat", _mac(1), "192.168.1.102", 12000.0,
        _common(300, 86, 1024, "ntp2")
        + (_tls_keepalive("ecobee_cloud", 443, 15.0, (260, 460), (150, 320), jitter=0.02),),
        (Sessions("upload", "ecobee_cloud", 443, 600.0, up=(1_500, 3_500), down=(500, 1_200)),),
        mirai=False, cpu=0.5,
    ),
    DeviceProfile(
        "Ennio_Doorbell", _mac(2), "192.168.1.103", 10000.0,
        _common(900, 76, 3600)
        + _p2p(30.0, (90, 90), (90, 90), hosts=("p2p_a", "p2p_b"), port=32108)
        + (Periodic("tcp", "ennio_cloud", 8000, 20.0, ((OUT, 78, 78), (IN, 66, 66), (IN, 70, 70), (OUT, 66, 66)),
                    jitter=0.02),),
        (Sessions("video_tcp", "ennio_cloud", 8001, 6000.0, duration=(8, 15), fps=15, gop=30,
                  p_frame=(700, 2_000), i_frame=(10_000, 18_000)),),
        cpu=0.6,
    ),
    DeviceProfile(
        "Philips_B120N10_Baby_Monitor", _mac(3), "192.168.1.104", 8000.0,
        _common(300, 82, 1024)
        + (Periodic("udp", "philips_relay", 3478, 5.0, ((OUT, 86, 86), (IN, 86, 86)), jitter=0.02),
           _tls_keepalive("philips_cloud", 443, 60.0, (180, 260), (140, 200))),
        (Sessions("video_udp", "viewer", 40000, 4000.0, duration=(15, 30), fps=10, gop=30,
                  p_frame=(800, 2_000), i_frame=(15_000, 25_000), audio_pps=15),),
        cpu=1.0,
    ),
    DeviceProfile(
        "Provision_PT_737E_Security_Camera", _mac(4), "192.168.1.105", 8000.0,
        _common(300, 80, 1024)
        + _p2p(10.0, (86, 96), (74, 78), hosts=("p2p_a", "p2p_b"), port=32100)
        + (_ssdp(60.0, (380, 420)),),
        (Sessions("upload", "provision_cloud", 443, 1200.0, up=(40_000, 90_000), down=(600, 1_500)),
         Sessions("video_udp", "viewer", 32200, 6000.0, duration=(10, 20), fps=12, gop=24,
                  p_frame=(1_000, 3_000), i_frame=(20_000, 35_000))),
        cpu=1.2,
    ),
    DeviceProfile(
        "Provision_PT_838_Security_Camera", _mac(5), "192.168.1.106", 8000.0,
        _common(300, 80, 1024)
        + _p2p(12.0, (90, 98), (74, 78), hosts=("p2p_b", "p2p_c"), port=32100)
        + (_ssdp(120.0, (380, 420)),
           _tls_keepalive("provision_cloud", 443, 30.0, (120, 180), (100, 140))),
        (Sessions("upload", "provision_cloud", 443, 1800.0, up=(60_000, 120_000), down=(600, 1_500)),
         Sessions("video_udp", "viewer", 32200, 6000.0, duration=(10, 20), fps=15, gop=30,
                  p_frame=(1_200, 3_500), i_frame=(25_000, 40_000))),
        cpu=1.2,
    ),
    DeviceProfile(
        "Samsung_SNH_1011_N_Webcam", _mac(6), "192.168.1.107", 14000.0,
        _common(600, 90, 3600, "ntp2")
        + (_tls_keepalive("samsung_xmpp", 5222, 20.0, (120, 160), (120, 160)),
           _ssdp(180.0, (330, 370), n=4),
           Periodic("tcp", "gateway", 49152, 600.0, ((OUT, 74, 74), (IN, 74, 74), (OUT, 66, 66), (OUT, 400, 450),
                                                     (IN, 66, 66), (IN, 600, 900), (OUT, 66, 66)),
                    jitter=0.1, persistent=False)),  # UPnP port-mapping refresh
        (Sessions("video_tcp", "samsung_stream", 1935, 7000.0, duration=(10, 20), fps=15, gop=30,
                  p_frame=(800, 2_500), i_frame=(30_000, 50_000)),),
        mirai=False, cpu=1.5,
    ),
    DeviceProfile(
        "SimpleHome_XCS7_1002_WHT_Security_Camera", _mac(7), "192.168.1.108", 9000.0,
        _common(120, 78, 1024)
        + _p2p(20.0, (74, 80), (70, 72), port=32100)
        + (_tls_keepalive("simplehome_cloud", 443, 45.0, (150, 200), (110, 130)),),
        (Sessions("upload", "simplehome_cloud", 443, 1200.0, up=(25_000, 60_000), down=(500, 1_000)),
         Sessions("video_udp", "viewer", 32300, 9000.0, duration=(15, 30), fps=10, gop=20,
                  p_frame=(900, 2_500), i_frame=(15_000, 25_000))),
        cpu=0.9,
    ),
    DeviceProfile(
        "SimpleHome_XCS7_1003_WHT_Security_Camera", _mac(8), "192.168.1.109", 14000.0,
        _common(180, 78, 1024)
        + _p2p(25.0, (74, 80), (70, 72), hosts=("p2p_a", "p2p_c"), port=32100)
        + (_tls_keepalive("simplehome_cloud", 443, 60.0, (150, 200), (110, 130)),),
        (Sessions("upload", "simplehome_cloud", 443, 2400.0, up=(25_000, 60_000), down=(500, 1_000)),),
        cpu=0.9,
    ),
)
