"""Model pieces: encoders, augmentations, losses, the embedding normaliser and the detector."""

from fedcl.model._augment import augment
from fedcl.model._consistency import ConsistencyLoss, squared_distance
from fedcl.model._detector import FedCLDetector
from fedcl.model._encoders import ENCODERS, MLPEncoder, build_encoder, encoder_for
from fedcl.model._infonce import InfoNCELoss
from fedcl.model._normaliser import EmbeddingNormaliser

__all__ = [
    "ENCODERS",
    "ConsistencyLoss",
    "EmbeddingNormaliser",
    "FedCLDetector",
    "InfoNCELoss",
    "MLPEncoder",
    "augment",
    "build_encoder",
    "encoder_for",
    "squared_distance",
]
