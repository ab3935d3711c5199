"""Model pieces: encoders, augmentations, losses, the embedding normaliser and the detector."""

from fedcl.model._augment import augment
from fedcl.model._consistency import ConsistencyLoss, squared_distance
from fedcl.model._detector import FedCLDetector
from fedcl.model._encoders import ENCODERS, MLPEncoder, build_encoder, encoder_for, initial_encoder
from fedcl.model._infonce import InfoNCELoss
from fedcl.model._normaliser import EmbeddingNormaliser
from fedcl.model._personal import COMBINE, PersonalDetector
from fedcl.model._threshold import threshold_at_fpr
from fedcl.model._vote import choose_window, majority_vote

__all__ = [
    "COMBINE",
    "ENCODERS",
    "ConsistencyLoss",
    "EmbeddingNormaliser",
    "FedCLDetector",
    "InfoNCELoss",
    "MLPEncoder",
    "PersonalDetector",
    "augment",
    "build_encoder",
    "choose_window",
    "encoder_for",
    "initial_encoder",
    "majority_vote",
    "squared_distance",
    "threshold_at_fpr",
]
