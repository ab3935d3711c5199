"""k-nearest-neighbour detector on scaled raw features: the strongest simple baseline on N-BaIoT."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted

from fedcl.data import NodeScaler
from fedcl.model import threshold_at_fpr


class KNNDetector(BaseEstimator):
    """Mean distance to the k nearest training rows after signed log1p + z-score (PyOD sign).

    Parameters
    ----------
    n_neighbors : int, default=5
    fpr_target : float, default=0.01
        The threshold is the (1 − fpr_target) quantile of the calibration scores.

    Attributes
    ----------
    scaler_ : NodeScaler
    index_ : sklearn.neighbors.NearestNeighbors
    decision_scores_ : ndarray of shape (n_samples,)
        Leave-one-out scores of the training rows.
    threshold_ : float
    """

    def __init__(self, n_neighbors: int = 5, fpr_target: float = 0.01) -> None:
        self.n_neighbors = n_neighbors
        self.fpr_target = fpr_target

    def fit(self, X: np.ndarray, y: None = None, X_val: np.ndarray | None = None) -> "KNNDetector":
        self.scaler_ = NodeScaler().fit(X)
        x = self.scaler_.transform(X)
        self.index_ = NearestNeighbors(n_neighbors=self.n_neighbors).fit(x)
        # k+1 neighbours, dropping the row itself, so training scores are not optimistic.
        dist, _ = NearestNeighbors(n_neighbors=self.n_neighbors + 1).fit(x).kneighbors(x)
        self.decision_scores_ = dist[:, 1:].mean(axis=1)
        calibration = self.decision_scores_ if X_val is None else self.decision_function(X_val)
        self.threshold_ = threshold_at_fpr(calibration, self.fpr_target)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "index_")
        dist, _ = self.index_.kneighbors(self.scaler_.transform(X))
        return dist.mean(axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision_function(X) > self.threshold_).astype(np.int64)
