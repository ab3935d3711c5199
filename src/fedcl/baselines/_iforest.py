"""Isolation Forest on scaled raw features, with PyOD's sign (higher = more anomalous)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from fedcl.baselines._base import ScaledDetector


class IsolationForestDetector(ScaledDetector):
    """scikit-learn's IsolationForest after signed log1p + z-score; score = −``score_samples``.

    Parameters
    ----------
    n_estimators : int, default=100
    max_samples : int, float or "auto", default="auto"
        Rows drawn to build each tree (sklearn's meaning: "auto" = min(256, n_samples)).
    fpr_target : float, default=0.01
        The threshold is the (1 − fpr_target) quantile of the calibration scores.
    random_state : int, default=0
    n_jobs : int, optional

    Attributes
    ----------
    scaler_ : NodeScaler
    model_ : sklearn.ensemble.IsolationForest
    decision_scores_ : ndarray of shape (n_samples,)
        Scores of the training rows.
    threshold_ : float
    """

    def __init__(self, n_estimators: int = 100, max_samples: int | float | str = "auto",
                 fpr_target: float = 0.01, random_state: int = 0, n_jobs: int | None = None) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.fpr_target = fpr_target
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_scaled(self, x: np.ndarray, x_val: np.ndarray | None) -> None:
        self.model_ = IsolationForest(n_estimators=self.n_estimators, max_samples=self.max_samples,
                                      random_state=self.random_state, n_jobs=self.n_jobs).fit(x)

    def _score_scaled(self, x: np.ndarray) -> np.ndarray:
        # score_samples is the opposite of the paper's anomaly score: flip it, as PyOD does.
        return -self.model_.score_samples(x)
