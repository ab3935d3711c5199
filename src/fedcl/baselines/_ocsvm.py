"""One-class SVM on a seeded subsample of scaled raw features, with PyOD's sign."""

from __future__ import annotations

import numpy as np
from sklearn.svm import OneClassSVM

from fedcl.baselines._base import ScaledDetector


class OCSVMDetector(ScaledDetector):
    """scikit-learn's OneClassSVM after signed log1p + z-score; score = −``score_samples``.

    Training costs O(n²)–O(n³) in the rows, so at most ``max_samples`` training rows, drawn without
    replacement with ``random_state``, fit the SVM (the scaler still sees every row).

    Parameters
    ----------
    kernel : str, default="rbf"
    nu : float, default=0.01
        Upper bound on the fraction of training rows outside the boundary.
    gamma : float or {"scale", "auto"}, default="scale"
    max_samples : int, default=3000
    fpr_target : float, default=0.01
        The threshold is the (1 − fpr_target) quantile of the calibration scores.
    random_state : int, default=0
        Seed of the subsample.

    Attributes
    ----------
    scaler_ : NodeScaler
    model_ : sklearn.svm.OneClassSVM
    decision_scores_ : ndarray of shape (n_samples,)
        Scores of all the training rows.
    threshold_ : float
    """

    def __init__(self, kernel: str = "rbf", nu: float = 0.01, gamma: float | str = "scale",
                 max_samples: int = 3000, fpr_target: float = 0.01, random_state: int = 0) -> None:
        self.kernel = kernel
        self.nu = nu
        self.gamma = gamma
        self.max_samples = max_samples
        self.fpr_target = fpr_target
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        if self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {self.max_samples}")

    def _fit_scaled(self, x: np.ndarray, x_val: np.ndarray | None) -> None:
        if len(x) > self.max_samples:
            rows = np.random.default_rng(self.random_state).choice(len(x), self.max_samples, replace=False)
            x = x[np.sort(rows)]
        self.model_ = OneClassSVM(kernel=self.kernel, nu=self.nu, gamma=self.gamma).fit(x)

    def _score_scaled(self, x: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(x)
