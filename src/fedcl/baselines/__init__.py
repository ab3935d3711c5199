"""Baseline detectors run in the same harness as fedcl."""

from fedcl import _lazy_exports

# Names load on first use (fedcl._lazy_exports): one baseline does not load the others' libraries.
_EXPORTS = {
    "._autoencoder": ["AutoencoderDetector"],
    "._federated_autoencoder": ["train_federated_autoencoder"],
    "._iforest": ["IsolationForestDetector"],
    "._knn": ["KNNDetector"],
    "._lof": ["LOFDetector"],
    "._ocsvm": ["OCSVMDetector"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AutoencoderDetector",
    "IsolationForestDetector",
    "KNNDetector",
    "LOFDetector",
    "OCSVMDetector",
    "train_federated_autoencoder",
]
