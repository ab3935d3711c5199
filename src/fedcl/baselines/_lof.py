"""Local Outlier Factor (novelty mode) on scaled raw features, with PyOD's sign."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

from fedcl.baselines._base import ScaledDetector


class LOFDetector(ScaledDetector):
    """scikit-learn's LocalOutlierFactor(novelty=True) after signed log1p + z-score; score = LOF.

    Parameters
    ----------
    n_neighbors : int, default=20
    fpr_target : float, default=0.01
        The threshold is the (1 − fpr_target) quantile of the calibration scores.
    n_jobs : int, optional

    Attributes
    ----------
    scaler_ : NodeScaler
    model_ : sklearn.neighbors.LocalOutlierFactor
    decision_scores_ : ndarray of shape (n_samples,)
        LOF of the training rows, each computed without itself (``-negative_outlier_factor_``).
    threshold_ : float
    """

    def __init__(self, n_neighbors: int = 20, fpr_target: float = 0.01, n_jobs: int | None = None) -> None:
        self.n_neighbors = n_neighbors
        self.fpr_target = fpr_target
        self.n_jobs = n_jobs

    def _fit_scaled(self, x: np.ndarray, x_val: np.ndarray | None) -> None:
        self.model_ = LocalOutlierFactor(n_neighbors=self.n_neighbors, novelty=True, n_jobs=self.n_jobs).fit(x)

    def _training_scores(self, x: np.ndarray) -> np.ndarray:
        # score_samples on the training rows would count each row as its own neighbour.
        return -self.model_.negative_outlier_factor_

    def _score_scaled(self, x: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(x)  # = LOF, about 1 for inliers
