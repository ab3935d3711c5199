"""Baseline detectors run in the same harness as fedcl."""

from fedcl.baselines._autoencoder import AutoencoderDetector
from fedcl.baselines._federated_autoencoder import train_federated_autoencoder
from fedcl.baselines._iforest import IsolationForestDetector
from fedcl.baselines._knn import KNNDetector
from fedcl.baselines._lof import LOFDetector
from fedcl.baselines._ocsvm import OCSVMDetector

__all__ = [
    "AutoencoderDetector",
    "IsolationForestDetector",
    "KNNDetector",
    "LOFDetector",
    "OCSVMDetector",
    "train_federated_autoencoder",
]
