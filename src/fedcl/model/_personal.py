"""A node's personalised detector: the federation's view of its traffic and its own, in one score."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fedcl.model._combine import COMBINE, shared_weight
from fedcl.model._detector import FedCLDetector
from fedcl.model._threshold import threshold_at_fpr

SCALE_QUANTILE = 0.9  # where the two views' benign scores are matched: a stabler tail than the threshold's


class PersonalDetector:
    """Two :class:`FedCLDetector` of one node, one around the federation's encoder (``shared``) and one
    around an encoder trained on the node's rows alone (``own``), combined score by score.

    The shared view knows traffic the node has never seen; the own view resolves the node's own
    traffic finely where a federation of different devices blurs it (device-skewed deals). The own
    view's scores are mapped into the shared view's units by matching the 90th percentiles of the
    two views' benign validation scores, then combined: ``weighted`` (a mean weighted per node by
    how light each view's benign tail is, :func:`fedcl.model._combine.shared_weight`), ``mean`` or
    ``max``; the threshold is set again on the combined validation scores. Everything is chosen
    from benign rows only, and
    scores stay in the shared frame's units, which pool across nodes as the federation's did
    (dividing by each node's threshold instead pooled worse on the simulated network and
    Dirichlet deals, development seed: docs/benchmark.md).
    """

    def __init__(self, shared: FedCLDetector, own: FedCLDetector, *, combine: str = "weighted",
                 fpr_target: float = 0.01) -> None:
        if combine not in COMBINE:
            raise ValueError(f"unknown combine {combine!r}; choose one of {', '.join(COMBINE)}")
        self.shared, self.own = shared, own
        self.combine = combine
        self.fpr_target = fpr_target

    @property
    def encoder(self):
        """The federation's encoder (the one every node shares)."""
        return self.shared.encoder

    def fit(self, X: np.ndarray, y: None = None, X_val: np.ndarray | None = None) -> "PersonalDetector":
        """Fit both views on benign rows ``X``; scale and threshold from ``X_val`` (benign) when given."""
        self.shared.fit(X, X_val=X_val)
        self.own.fit(X, X_val=X_val)
        return self.calibrate(X if X_val is None else X_val)

    def calibrate(self, calibration: np.ndarray) -> "PersonalDetector":
        """The own view's scale, the views' weights and the threshold from benign rows ``calibration``."""
        shared_val, own_val = (view.decision_function(calibration) for view in (self.shared, self.own))
        shared_q, own_q = (np.quantile(scores, SCALE_QUANTILE) for scores in (shared_val, own_val))
        self.own_scale_ = float(shared_q / max(own_q, 1e-12))
        self.shared_weight_ = shared_weight(shared_val, own_val) if self.combine == "weighted" else 0.5
        self.threshold_ = threshold_at_fpr(self.decision_function(calibration), self.fpr_target)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of rows ``X``, shape (n,), in the shared view's units; higher = more anomalous."""
        return COMBINE[self.combine](self.shared.decision_function(X), self.own.decision_function(X) * self.own_scale_,
                                     self.shared_weight_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for an anomaly (score above ``threshold_``), 0 otherwise."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def state_dict(self) -> dict[str, Tensor]:
        """Both views' fitted state and the own view's encoder, as tensors only."""
        return ({f"shared.{k}": v for k, v in self.shared.state_dict().items()}
                | {f"own.{k}": v for k, v in self.own.state_dict().items()}
                | {f"own_encoder.{k}": v for k, v in self.own.encoder.state_dict().items()}
                | {"own_scale": torch.tensor(self.own_scale_, dtype=torch.float64),
                   "shared_weight": torch.tensor(self.shared_weight_, dtype=torch.float64),
                   "threshold": torch.tensor(self.threshold_, dtype=torch.float64)})

    def load_state_dict(self, state: dict[str, Tensor]) -> "PersonalDetector":
        """Restore from :meth:`state_dict` (both encoders' architectures are given at construction)."""
        def part(prefix: str) -> dict[str, Tensor]:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        self.shared.load_state_dict(part("shared."))
        self.own.encoder.load_state_dict(part("own_encoder."))
        self.own.load_state_dict(part("own."))
        self.own_scale_ = float(state["own_scale"])
        self.shared_weight_ = float(state.get("shared_weight", 0.5))  # saved before weighted combining: 0.5
        self.threshold_ = float(state["threshold"])
        return self
