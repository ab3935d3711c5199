"""The fit / score / threshold skeleton shared by the baselines that scale raw rows with a NodeScaler."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from fedcl.data import NodeScaler
from fedcl.errors import check_fraction
from fedcl.model import threshold_at_fpr


class ScaledDetector(BaseEstimator):
    """PyOD-style detector on NodeScaler-scaled rows; subclasses write ``_fit_scaled`` and ``_score_scaled``.

    ``fit`` scales with a NodeScaler fitted on the training rows, trains on the scaled rows, then
    sets ``threshold_`` to the (1 − fpr_target) quantile of the ``X_val`` scores (training scores
    when ``X_val`` is None). Subclasses store ``fpr_target`` and ``random_state``.
    """

    def fit(self, X: np.ndarray, y: None = None, X_val: np.ndarray | None = None):
        """Fit on benign rows ``X`` of shape (n_samples, n_features), NaN allowed; ``X_val`` sets the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Benign training rows, raw (guarded) values; NaN allowed.
        y : None
            Ignored; present for API consistency.
        X_val : array-like of shape (n_val, n_features), optional
            Held-out benign rows: the threshold is the (1 − fpr_target) quantile of their scores.

        Returns
        -------
        self
        """
        self._check_params()
        self.scaler_ = NodeScaler().fit(X)
        x = self.scaler_.transform(X)
        x_val = None if X_val is None else self.scaler_.transform(X_val)
        self._fit_scaled(x, x_val)
        return self._calibrate(x, x_val)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of rows ``X`` (n_samples, n_features), shape (n_samples,); higher = more anomalous."""
        check_is_fitted(self, "threshold_")
        return self._score_scaled(self.scaler_.transform(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for an anomaly (score above ``threshold_``), 0 otherwise; shape (n_samples,)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def _check_params(self) -> None:
        check_fraction("fpr_target", self.fpr_target)  # before fitting, not after

    def _calibrate(self, x: np.ndarray, x_val: np.ndarray | None):
        """Training scores and threshold from the fitted model; returns self."""
        self.decision_scores_ = self._training_scores(x)
        calibration = self.decision_scores_ if x_val is None else self._score_scaled(x_val)
        self.threshold_ = threshold_at_fpr(calibration, self.fpr_target)
        return self

    def _training_scores(self, x: np.ndarray) -> np.ndarray:
        return self._score_scaled(x)

    def _fit_scaled(self, x: np.ndarray, x_val: np.ndarray | None) -> None:
        raise NotImplementedError

    def _score_scaled(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError
