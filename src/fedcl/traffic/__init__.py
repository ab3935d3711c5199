"""From packet captures to N-BaIoT's 115 per-packet features.

Typical use::

    df = extract_features("capture.pcap")            # pandas.DataFrame, fedcl.data.COLUMNS

    extractor = FeatureExtractor()                   # or incrementally, in capture order
    for chunk in batches(read_packets("capture.pcapng")):
        rows = extractor.extract(chunk)              # (len(chunk), 115)

    simulate_network("data/simulated", seed=0)       # 9 simulated devices, UCI layout
"""

from ._extractor import LAMBDAS, VAR_RTOL, FeatureExtractor, extract_features
from ._packets import CaptureReader, Packet, read_packets
from ._profiles import DEVICES, DeviceProfile
from ._simulate import ATTACKS, simulate_network
from ._synthetic import write_synthetic_capture

__all__ = [
    "ATTACKS",
    "DEVICES",
    "LAMBDAS",
    "VAR_RTOL",
    "DeviceProfile",
    "CaptureReader",
    "FeatureExtractor",
    "Packet",
    "extract_features",
    "read_packets",
    "simulate_network",
    "write_synthetic_capture",
]
