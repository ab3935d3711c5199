"""Model pieces: encoders, augmentations, losses, the embedding normaliser and the detector.

Names load on first use (:func:`fedcl._lazy_exports`): the encoders and losses do not pull in the
detector's scikit-learn.
"""

from fedcl import _lazy_exports

_EXPORTS = {
    "._accepting": ["AcceptingDetector", "accepting", "federation_view"],
    "._augment": ["augment"],
    "._consistency": ["ConsistencyLoss", "squared_distance"],
    "._detector": ["FedCLDetector"],
    "._encoders": ["ENCODERS", "MLPEncoder", "build_encoder", "encoder_for", "initial_encoder"],
    "._infonce": ["InfoNCELoss"],
    "._islands": ["island_rows"],
    "._normaliser": ["EmbeddingNormaliser"],
    "._combine": ["COMBINE"],
    "._personal": ["PersonalDetector"],
    "._threshold": ["threshold_at_fpr"],
    "._vote": ["choose_window", "majority_vote"],
}
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AcceptingDetector",
    "COMBINE",
    "ENCODERS",
    "ConsistencyLoss",
    "EmbeddingNormaliser",
    "FedCLDetector",
    "InfoNCELoss",
    "MLPEncoder",
    "PersonalDetector",
    "accepting",
    "augment",
    "build_encoder",
    "choose_window",
    "encoder_for",
    "federation_view",
    "initial_encoder",
    "island_rows",
    "majority_vote",
    "squared_distance",
    "threshold_at_fpr",
]
