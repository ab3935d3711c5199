"""Scoring on a gateway without torch or flwr: a node's exported bundle, the vote, alert episodes.

Nothing here imports torch: ``fedcl detect --bundle DIR`` runs on ONNX Runtime, numpy and the
packet decoder (docs/gateway.md). :mod:`fedcl.export` writes the bundles that :func:`load_bundle` reads.

Typical use::

    detector = load_bundle("bundle/")                # verifies every file against bundle.json
    scores = detector.decision_function(rows)        # (n,), the torch detector's scores to 1e-5
"""

from fedcl.edge._bundle import BundleDetector, load_bundle
from fedcl.edge._episodes import EpisodeBuilder, alert_episodes
from fedcl.edge._format import ARRAYS_FILE, ENCODERS_FILE, FORMAT, FORMAT_VERSION, MANIFEST_FILE, file_sha256
from fedcl.edge._vote import majority_vote

__all__ = [
    "ARRAYS_FILE",
    "ENCODERS_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "BundleDetector",
    "EpisodeBuilder",
    "alert_episodes",
    "file_sha256",
    "load_bundle",
    "majority_vote",
]
