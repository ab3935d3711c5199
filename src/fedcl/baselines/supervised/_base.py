"""One training loop for the supervised classifiers; subclasses only build their network."""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from fedcl.data import NodeScaler

# Rows scored per forward pass: bounds the (rows, heads, 23, 23) attention tensors of the GAT.
_CHUNK = 4096


class _SupervisedClassifier(BaseEstimator):
    """Binary classifier (1 = attack) trained with class-weighted BCE and early stopping.

    Subclasses declare their own ``__init__`` (sklearn reads the parameters from its signature)
    including the training parameters below, and implement ``_build_module(n_features)``,
    which returns a module mapping scaled rows (B, n_features) to logits (B,).
    """

    def _build_module(self, n_features: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_params(self) -> None:
        checks = [
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (0.0 < self.threshold < 1.0, "threshold must be in (0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}, got {self.get_params()}")

    @staticmethod
    def _check_labels(X, y, what: str) -> tuple[np.ndarray, np.ndarray]:
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise ValueError(f"{what}: y must have shape ({len(X)},), got {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"{what}: y must hold 0 (benign) and 1 (attack) only")
        return X, y.astype(np.float32)

    def fit(self, X, y, X_val=None, y_val=None):
        """Train on labelled rows; stop early on the validation loss when validation rows are given.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Raw (leakage-guarded) rows; NaN allowed.
        y : array-like of shape (n_samples,)
            1 = attack, 0 = benign; both classes must be present.
        X_val, y_val : array-like of shape (n_val, n_features) and (n_val,), optional
            Validation rows. Without them the model trains ``max_epochs`` epochs.

        Returns
        -------
        self
            The fitted classifier.
        """
        self._check_params()
        X, y = self._check_labels(X, y, "training rows")
        n_attack = int(y.sum())
        if n_attack == 0 or n_attack == len(y):
            raise ValueError("training rows must contain both benign (0) and attack (1) rows")
        validate = X_val is not None
        if validate:
            X_val, y_val = self._check_labels(X_val, y_val, "validation rows")
            if X_val.shape[1] != X.shape[1]:
                raise ValueError(f"X_val has {X_val.shape[1]} columns, X has {X.shape[1]}")

        # Scaled like every fedcl detector: signed log + z-score from benign training rows only.
        self.scaler_ = NodeScaler().fit(X[y == 0])
        x = torch.from_numpy(self.scaler_.transform(X))
        target = torch.from_numpy(y)
        if validate:
            x_val, target_val = torch.from_numpy(self.scaler_.transform(X_val)), torch.from_numpy(y_val)
        # Class imbalance: each class weighs the same in the loss in total (pos_weight = n_benign /
        # n_attack), so a 0.5 threshold on P(attack) targets balanced accuracy, whatever the mix.
        self.pos_weight_ = float((len(y) - n_attack) / n_attack)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(self.pos_weight_))

        # A private RNG stream: seeding does not touch the caller's global torch state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            module = self._build_module(X.shape[1])
            optimiser = torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            order = torch.Generator().manual_seed(self.random_state)
            history, best_loss, best_state, best_epoch = [], np.inf, None, 0
            for epoch in range(self.max_epochs):
                module.train()
                total = 0.0
                for batch in torch.randperm(len(x), generator=order).split(self.batch_size):
                    optimiser.zero_grad()
                    loss = loss_fn(module(x[batch]), target[batch])
                    loss.backward()
                    optimiser.step()
                    total += loss.item() * len(batch)
                entry = {"epoch": epoch, "train_loss": total / len(x)}
                if validate:
                    entry["val_loss"] = self._loss(module, loss_fn, x_val, target_val)
                    if entry["val_loss"] < best_loss:
                        best_loss, best_epoch = entry["val_loss"], epoch
                        best_state = copy.deepcopy(module.state_dict())
                history.append(entry)
                if validate and epoch - best_epoch >= self.patience:
                    break
        if best_state is not None:
            module.load_state_dict(best_state)  # the weights of the best validation epoch
        module.eval()
        self.module_ = module
        self.history_ = history
        self.best_epoch_ = best_epoch if validate else len(history) - 1
        self.n_features_in_ = X.shape[1]
        self.threshold_ = float(self.threshold)
        return self

    @staticmethod
    @torch.no_grad()
    def _loss(module: nn.Module, loss_fn: nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
        module.eval()
        logits = torch.cat([module(chunk) for chunk in x.split(_CHUNK)])
        return float(loss_fn(logits, target))

    @torch.no_grad()
    def decision_function(self, X) -> np.ndarray:
        """P(attack) of each row: higher = more anomalous, as for the unsupervised detectors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Raw (leakage-guarded) rows; NaN allowed.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            Values in [0, 1].
        """
        check_is_fitted(self, "module_")
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, the classifier was fitted with {self.n_features_in_}")
        x = torch.from_numpy(self.scaler_.transform(X))
        logits = torch.cat([self.module_(chunk) for chunk in x.split(_CHUNK)]).double()
        return torch.sigmoid(logits).numpy()

    def predict(self, X) -> np.ndarray:
        """1 (attack) where ``decision_function(X) > threshold_``, else 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,), int64
        """
        return (self.decision_function(X) > self.threshold_).astype(np.int64)
