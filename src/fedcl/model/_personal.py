"""A node's personalised detector: the federation's view of its traffic and its own, in one score."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fedcl.model._combine import COMBINE, OWN_VIEW_ODDS, combine_views, view_weights
from fedcl.model._detector import FedCLDetector
from fedcl.model._threshold import threshold_at_fpr

SCALE_QUANTILE = 0.9  # where the views' benign scores are matched: a stabler tail than the threshold's


class PersonalDetector:
    """Two or three :class:`FedCLDetector` of one node, combined score by score: one around the
    federation's encoder (``shared``), one around an encoder trained on the node's rows alone (``own``)
    and, under the ``tuned`` rule, one around the federation's encoder fine-tuned on the node's rows
    (``tuned``).

    The shared view knows traffic the node has never seen; the own view resolves the node's own
    traffic finely where a federation of different devices blurs it (device-skewed deals); the
    fine-tuned view starts from what the federation knows and then learns the node. Each view's scores
    are mapped into one view's units by matching the 90th percentiles of their benign validation
    scores (the shared view's; the own view's under ``tuned``, which pooled across nodes better with
    three views on the development seed), then combined: ``weighted`` and ``tuned`` (a mean weighted
    per node by how light each view's benign tail is, :func:`fedcl.model._combine.view_weights`),
    ``mean`` or ``max``; the threshold is set again on the combined validation scores. Everything is
    chosen from benign rows only (dividing by each node's threshold instead pooled worse on the
    simulated network and Dirichlet deals, development seed: docs/benchmark.md).
    """

    def __init__(self, shared: FedCLDetector, own: FedCLDetector, *, combine: str = "weighted",
                 fpr_target: float = 0.01, tuned: FedCLDetector | None = None) -> None:
        if combine not in COMBINE:
            raise ValueError(f"unknown combine {combine!r}; choose one of {', '.join(COMBINE)}")
        if (combine == "tuned") != (tuned is not None):
            raise ValueError("the tuned combine needs the fine-tuned view, and only it has one")
        self.shared, self.own, self.tuned = shared, own, tuned
        self.combine = combine
        self.fpr_target = fpr_target

    @property
    def encoder(self):
        """The federation's encoder (the one every node shares)."""
        return self.shared.encoder

    @property
    def views(self) -> dict[str, FedCLDetector]:
        """The node's views by name: shared, own (and tuned)."""
        return {"shared": self.shared, "own": self.own} | ({"tuned": self.tuned} if self.tuned is not None else {})

    def fit(self, X: np.ndarray, y: None = None, X_val: np.ndarray | None = None) -> "PersonalDetector":
        """Fit every view on benign rows ``X``; scales, weights and threshold from ``X_val`` (benign) when given,
        scored as each view scored them before any took them as references."""
        for view in self.views.values():
            view.fit(X, X_val=X_val)
        if X_val is None:
            return self.calibrate(X)
        return self._calibrate({name: view.validation_scores_ for name, view in self.views.items()})

    def calibrate(self, calibration: np.ndarray) -> "PersonalDetector":
        """The views' scales and weights and the threshold from benign rows ``calibration``, scored by the views."""
        return self._calibrate({name: view.decision_function(calibration) for name, view in self.views.items()})

    def _calibrate(self, validation: dict[str, np.ndarray]) -> "PersonalDetector":
        """The views' scales and weights and the threshold from each view's scores of benign rows."""
        quantiles = {name: np.quantile(scores, SCALE_QUANTILE) for name, scores in validation.items()}
        unit = quantiles["own" if self.combine == "tuned" else "shared"]
        self.scales_ = {name: float(unit / max(q, 1e-12)) for name, q in quantiles.items()}
        self.weights_ = (view_weights(validation, OWN_VIEW_ODDS.get(self.combine, 1.0))
                         if self.combine in ("weighted", "tuned") else dict.fromkeys(validation, 1 / len(validation)))
        self.threshold_ = threshold_at_fpr(combine_views(self.combine, validation, self.scales_, self.weights_),
                                           self.fpr_target)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of rows ``X``, shape (n,), in the node's units; higher = more anomalous."""
        return combine_views(self.combine, {name: view.decision_function(X) for name, view in self.views.items()},
                             self.scales_, self.weights_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for an anomaly (score above ``threshold_``), 0 otherwise."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def state_dict(self) -> dict[str, Tensor]:
        """Every view's fitted state and the encoders only this node has, as tensors only."""
        def scalar(value: float) -> Tensor:
            return torch.tensor(value, dtype=torch.float64)

        state = {}
        for name, view in self.views.items():
            state |= {f"{name}.{k}": v for k, v in view.state_dict().items()}
            if name != "shared":  # the shared encoder comes with the run's model
                state |= {f"{name}_encoder.{k}": v for k, v in view.encoder.state_dict().items()}
            state |= {f"{name}_scale": scalar(self.scales_[name]), f"{name}_weight": scalar(self.weights_[name])}
        return state | {"threshold": scalar(self.threshold_)}

    def load_state_dict(self, state: dict[str, Tensor]) -> "PersonalDetector":
        """Restore from :meth:`state_dict` (the encoders' architectures are given at construction)."""
        def part(prefix: str) -> dict[str, Tensor]:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        saved = {key.removesuffix("_scale") for key in state if key.endswith("_scale") and "." not in key}
        if saved - {"own"} and saved != set(self.views):  # only the own view's scale: saved before three views
            raise ValueError(f"the saved detector has the views {', '.join(sorted(saved))}; this one is built with "
                             f"{', '.join(self.views)} (personalisation {self.combine!r})")
        for name, view in self.views.items():
            if name != "shared":
                view.encoder.load_state_dict(part(f"{name}_encoder."))
            view.load_state_dict(part(f"{name}."))
        # Saved before three views: no shared_scale (1) nor own_weight; before weighted combining no shared_weight.
        self.scales_ = {name: float(state.get(f"{name}_scale", 1.0)) for name in self.views}
        shared_weight = float(state.get("shared_weight", 0.5))
        self.weights_ = {name: float(state.get(f"{name}_weight", 1 - shared_weight)) for name in self.views}
        self.threshold_ = float(state["threshold"])
        return self
