"""From packet captures to N-BaIoT's 115 per-packet features.

Typical use::

    df = extract_features("capture.pcap")            # pandas.DataFrame, fedcl.data.COLUMNS

    extractor = FeatureExtractor()                   # or incrementally, in capture order
    for batch in CaptureReader("capture.pcapng").batches():   # PacketBatch: packets as columns
        rows = extractor.extract(batch)              # (len(batch), 115); a list of Packets works too

    with FeatureWriter("features.parquet") as out:   # to disk chunk by chunk: CSV, or Parquet by name
        out.write(rows)

    with LiveCapture("eth0") as capture, stop_capture_on_signals(capture):   # a live interface, until SIGINT/SIGTERM
        for packets in capture.batches():            # at most 1,024 packets or 0.2 s each
            rows = extractor.extract(packets)

    simulate_network("data/simulated", seed=0)       # 9 simulated devices, UCI layout
"""

from fedcl import _lazy_exports

# Names load on first use (fedcl._lazy_exports): reading packets does not load the simulator.
_EXPORTS = {
    "._extractor": ["LAMBDAS", "VAR_RTOL", "FeatureExtractor", "extract_features", "pass_aligned_chunks"],
    "._live": ["LiveCapture", "stop_capture_on_signals"],
    "._packets": ["CaptureReader", "Packet", "PacketBatch", "read_packets"],
    "._profiles": ["DEVICES", "DeviceProfile"],
    "._simulate": ["ATTACKS", "simulate_network"],
    "._synthetic": ["write_synthetic_capture"],
    "._tables": ["FeatureWriter"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ATTACKS",
    "DEVICES",
    "LAMBDAS",
    "VAR_RTOL",
    "DeviceProfile",
    "CaptureReader",
    "FeatureExtractor",
    "FeatureWriter",
    "LiveCapture",
    "Packet",
    "PacketBatch",
    "extract_features",
    "pass_aligned_chunks",
    "read_packets",
    "simulate_network",
    "stop_capture_on_signals",
    "write_synthetic_capture",
]
