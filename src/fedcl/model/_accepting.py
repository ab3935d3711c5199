"""A node's detector that accepts what another node's federation view finds benign (issue 11, item 3)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor

from fedcl.model._detector import FedCLDetector
from fedcl.model._personal import PersonalDetector


class AcceptingDetector:
    """A node's detector (``base``), whose score a row loses when another node's federation view finds
    it benign: ``min(s(x), t · min_j s_j(x) / (margin · t_j))``, with ``s``, ``t`` the node's score and
    threshold and ``s_j``, ``t_j`` those of node ``j``'s detector around the federation's encoder (``peers``).

    So a row is flagged when the node's detector flags it and no peer scores it below ``margin`` × its own
    alarm line; scores keep the node's units. A node knows only its own benign traffic and flags traffic
    the federation has seen elsewhere; with its peers' views it does not (the federation-wide benign FPR of
    docs/benchmark.md). The price: an attack that looks like another node's benign traffic is accepted too
    (on the simulated network the gafgyt floods do). ``margin`` in (0, 1]: the smaller, the surer a peer
    must be. With ``quorum`` q, the q-th smallest of the peers' ratios counts instead of the smallest: a
    row is accepted only when q peers agree (all of them when fewer), so no single peer can silence this
    node. Peers come from the other nodes and are released to this one (docs/privacy.md). Scoring costs a
    scaler and encoder pass per peer.
    """

    def __init__(self, base: FedCLDetector | PersonalDetector, peers: Mapping[str, FedCLDetector],
                 margin: float, quorum: int = 1) -> None:
        if not 0 < margin <= 1:
            raise ValueError(f"margin must be in (0, 1], got {margin}")
        if quorum < 1:
            raise ValueError(f"quorum must be at least 1, got {quorum}")
        unusable = [name for name, peer in peers.items() if not 0 < peer.threshold_ < np.inf]
        if unusable:
            raise ValueError(f"peer view(s) {', '.join(unusable)} have no positive finite threshold")
        self.base, self.peers, self.margin, self.quorum = base, dict(peers), margin, quorum

    @property
    def encoder(self):
        """The federation's encoder."""
        return self.base.encoder

    @property
    def threshold_(self) -> float:
        return self.base.threshold_

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of rows ``X``, shape (n,), in the node's units; higher = more anomalous."""
        scores = self.base.decision_function(X)
        if not self.peers:
            return scores
        ratios = np.stack([peer.decision_function(X) / (self.margin * peer.threshold_) for peer in self.peers.values()])
        q = min(self.quorum, len(ratios)) - 1
        return np.minimum(scores, self.threshold_ * np.partition(ratios, q, axis=0)[q])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for an anomaly (score above ``threshold_``), 0 otherwise."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def state_dict(self) -> dict[str, Tensor]:
        """The base detector's state: a run saves every node's, and each node's peers are the others'."""
        return self.base.state_dict()


def federation_view(detector: FedCLDetector | PersonalDetector | AcceptingDetector) -> FedCLDetector:
    """The part of a node's detector around the federation's encoder alone: what it releases to its peers."""
    if isinstance(detector, AcceptingDetector):
        detector = detector.base
    return detector.shared if isinstance(detector, PersonalDetector) else detector


def accepting(detectors: Mapping[str, FedCLDetector | PersonalDetector], margin: float,
              others: Mapping[str, FedCLDetector] | None = None, quorum: int = 1) -> dict[str, AcceptingDetector]:
    """Each node's detector with every other node's federation view as its peers, and ``others``: the
    federation views of nodes whose own detectors are not given here."""
    views = {name: federation_view(d) for name, d in detectors.items()} | dict(others or {})
    return {name: AcceptingDetector(d, {p: v for p, v in views.items() if p != name}, margin, quorum)
            for name, d in detectors.items()}
