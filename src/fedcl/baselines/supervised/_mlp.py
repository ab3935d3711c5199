"""MLP classifier on the 115 scaled features: the paper's supervised MLP row."""

from __future__ import annotations

from torch import nn

from ._base import _SupervisedClassifier

__all__ = ["MLPClassifier"]

_TRAINING_PARAMETERS = """
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=1e-4
        Adam weight decay.
    batch_size : int, default=128
    max_epochs : int, default=100
    patience : int, default=10
        Epochs without a lower validation loss before stopping (only with validation rows).
    threshold : float, default=0.5
        ``predict`` returns 1 where P(attack) > threshold.
    random_state : int, default=0
        Seeds weights and batch order (a private torch RNG stream).

    Attributes
    ----------
    scaler_ : NodeScaler
        Fitted on the benign (y = 0) training rows, as every fedcl detector scales.
    module_ : torch.nn.Module
        The network, in eval mode, with the weights of the best validation epoch.
    pos_weight_ : float
        n_benign / n_attack of the training rows: the weight of attack rows in the loss.
    threshold_ : float
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` and (with validation rows) ``val_loss``.
    best_epoch_ : int
    n_features_in_ : int
"""

_TRAINING_NOTES = """
    Training: binary cross-entropy with the attack class weighted by ``n_benign / n_attack`` (both
    classes weigh the same in total, so 0.5 on P(attack) is the balanced-error threshold and no
    attack rows are spent on calibrating it), Adam, shuffled mini-batches, early stopping on the
    validation loss with the best weights restored. Inputs are raw guarded rows; the classifier
    scales them with a :class:`fedcl.data.NodeScaler` fitted on its benign training rows.
"""


class _MLP(nn.Module):
    def __init__(self, n_features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers, width = [], n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x):  # (B, F) -> (B,)
        return self.net(x).squeeze(-1)


class MLPClassifier(_SupervisedClassifier):
    __doc__ = f"""Fully connected classifier, 115 → 128 → 64 → 1 with ReLU; ``decision_function`` = P(attack).
{_TRAINING_NOTES}
    Parameters
    ----------
    hidden : tuple of int, default=(128, 64)
        Widths of the hidden layers.
{_TRAINING_PARAMETERS}"""

    def __init__(self, hidden=(128, 64), lr=1e-3, weight_decay=1e-4, batch_size=128, max_epochs=100,
                 patience=10, threshold=0.5, random_state=0) -> None:
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.threshold = threshold
        self.random_state = random_state

    def _build_module(self, n_features: int) -> nn.Module:
        return _MLP(n_features, tuple(self.hidden))
