"""Membership-inference audit: can whoever reads what a node releases tell its training rows from rows
it never trained on?

Each attack scores candidate rows (higher = "this row trained the node") from what one attacker holds:

- **encoder loss** (Yeom et al. 2018): anyone holding the federation's final θ (a curious node, or
  anyone it is released to) computes each row's contrastive loss under it (:func:`row_losses`); a row
  the encoder trained on should have a lower loss; or the agreement of two augmented views of the row
  (:func:`view_alignment`), which both training objectives raise; or the drop in loss from the initial
  θ_0 to the final θ (:func:`loss_drop_scores`), which calibrates each row's difficulty (Watson et al.
  2022) with a model every node received (the first broadcast) and the seed alone determines;
- **update loss drop**: the curious server, which reads θ (it broadcast it) and θ_i = θ + Δθ_i of each
  node and round, scores how much the node's update lowered the row's loss, in its last round or
  summed over rounds (:func:`loss_drop_scores`);
- **tracing on μ_i** (Homer et al. 2008; Dwork et al. 2015): the server correlates a row's embedding
  under θ_i with the mean embedding μ_i the node released, both centred on the mean embedding of
  rows it knows are not the node's (:func:`tracing_scores`), in the last round or summed over rounds.

The attacker is given the node's input scaling (:func:`audit_rows` scales every candidate as the node
scales its training rows): a real attacker does not hold the node's fitted scaler, so the measured
advantage is an upper bound on that attacker's. Members are a random subset of the node's training
rows, non-members its held-out benign rows (validation and test), of which half serve the attacker as
reference rows and half are scored; members and scored non-members are as many (balanced).

Each attack is judged per node by AUROC, membership advantage max_t(TPR − FPR) (Yeom et al.) and TPR at
FPR 0.01 (Carlini et al. 2022), :func:`membership_metrics`; under (ε, δ)-DP the advantage of any attack
is at most (e^ε − 1 + 2δ)/(e^ε + 1) (:func:`dp_advantage_bound`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor, nn

from fedcl.config import FedCLConfig
from fedcl.data import NodeSplit, training_scaler
from fedcl.federated.local import LocalUpdate, embed
from fedcl.federated.params import set_arrays
from fedcl.model import augment
from fedcl.privacy.dp import RowContrastiveLoss, row_views
from fedcl.seeding import node_rng

#: Augmentation draws a row's loss is averaged over: one draw's views are noisy, and the attacker can
#: afford several.
DRAWS = 4
#: The false-positive rate of the low-FPR figure. Carlini et al. 2022 report TPR at FPR 0.1 % on large sets;
#: a node scores a few hundred non-members, so 0.1 % would be less than one row, and 1 % is a few rows.
LOW_FPR = 0.01
_AUDIT_STREAM = 16_005  # the seeding stream of the candidate rows (issue 16, item 5)
_BLOCK = 4096  # rows per forward pass


@dataclass(frozen=True)
class AuditRows:
    """The rows an attacker tests against one node, scaled as the node scales its training rows.

    Attributes
    ----------
    members : Tensor of shape (m, n_features)
        Rows the node trained on.
    non_members : Tensor of shape (m, n_features)
        Held-out rows of the node, scored against the members (as many).
    reference : Tensor of shape (r, n_features)
        Other held-out rows of the node, which the attacker holds as known non-members (the centre of
        the tracing attack); disjoint from ``non_members``.
    """

    members: Tensor
    non_members: Tensor
    reference: Tensor

    @property
    def candidates(self) -> Tensor:
        """Members, then non-members: (2m, n_features)."""
        return torch.cat([self.members, self.non_members])

    @property
    def is_member(self) -> np.ndarray:
        """1 for each member row of :attr:`candidates`, 0 for each non-member."""
        return np.r_[np.ones(len(self.members)), np.zeros(len(self.non_members))]


def audit_rows(split: NodeSplit, config: FedCLConfig) -> AuditRows:
    """One node's members, scored non-members and reference rows, drawn with ``config.seed``.

    Held-out rows are the node's validation and benign test rows, shuffled: the first half are the
    reference, the rest the scored non-members; as many members are drawn from its training rows. All
    are scaled with the scaler the node fits on its training rows (the attacker is given it).
    """
    scaler = training_scaler(config.differential_privacy, config.schema).fit(split.train)
    held_out = np.vstack([split.val, split.test_benign])
    rng = node_rng(config.seed, split.name, _AUDIT_STREAM)
    order = rng.permutation(len(held_out))
    n_reference = len(held_out) // 2
    n_scored = min(len(held_out) - n_reference, len(split.train))
    if n_reference < 1 or n_scored < 1:
        raise ValueError(f"node {split.name!r} has {len(held_out)} held-out rows; the audit needs at least 2")
    members = np.sort(rng.choice(len(split.train), n_scored, replace=False))

    def scaled(rows: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(scaler.transform(rows), dtype=np.float32))

    return AuditRows(members=scaled(split.train[members]),
                     non_members=scaled(held_out[np.sort(order[n_reference:n_reference + n_scored])]),
                     reference=scaled(held_out[np.sort(order[:n_reference])]))


@torch.no_grad()
def row_losses(encoder: nn.Module, rows: Tensor, config: FedCLConfig, seed: int = 0, draws: int = DRAWS) -> np.ndarray:
    """Each row's contrastive loss under ``encoder``: (rows,), the mean over ``draws`` seeded draws.

    The loss is :class:`~fedcl.privacy.dp.RowContrastiveLoss` (two augmented views as the positive pair,
    the row's feature-shuffled copies as negatives): no other row's embedding enters a row's loss. The
    draws are a function of ``seed`` and the rows' shape: the same rows scored under two encoders with one
    seed see the same views, so a difference of losses carries no augmentation noise.
    """
    generator = torch.Generator().manual_seed(seed)
    loss = RowContrastiveLoss(config.temperature)
    encoder.eval()
    total = torch.zeros(len(rows), dtype=torch.float64)
    for _ in range(draws):
        views = row_views(rows, (augment(rows, config.mask_prob, config.noise_std, generator),
                                 augment(rows, config.mask_prob, config.noise_std, generator)), generator)
        # The MLP acts on the last axis: (rows, views, features) -> (rows, views, dim).
        total += torch.cat([loss(encoder(views[i : i + _BLOCK])) for i in range(0, len(rows), _BLOCK)]).double()
    return (total / draws).numpy()


@torch.no_grad()
def view_alignment(encoder: nn.Module, rows: Tensor, config: FedCLConfig, seed: int = 0,
                   draws: int = DRAWS) -> np.ndarray:
    """Each row's cosine similarity between the embeddings of two seeded augmented views under ``encoder``,
    the mean over ``draws``: (rows,), higher = member.

    Both training objectives pull a training row's two views together (the positive pair of the batch
    InfoNCE in the clear, of :class:`~fedcl.privacy.dp.RowContrastiveLoss` under DP), whatever they use
    as negatives.
    """
    generator = torch.Generator().manual_seed(seed)
    encoder.eval()
    total = torch.zeros(len(rows), dtype=torch.float64)
    for _ in range(draws):
        a = augment(rows, config.mask_prob, config.noise_std, generator)
        b = augment(rows, config.mask_prob, config.noise_std, generator)
        total += torch.cat([F.cosine_similarity(encoder(a[i : i + _BLOCK]), encoder(b[i : i + _BLOCK]), dim=1)
                            for i in range(0, len(rows), _BLOCK)]).double()
    return (total / draws).numpy()


def encoder_loss_scores(encoder: nn.Module, rows: Tensor, config: FedCLConfig, seed: int = 0) -> np.ndarray:
    """The loss attack on a released encoder: −loss per row (higher = member), (rows,)."""
    return -row_losses(encoder, rows, config, seed)


def loss_drop_scores(before: nn.Module, after: nn.Module, rows: Tensor, config: FedCLConfig,
                     seed: int = 0) -> np.ndarray:
    """The server's attack on one update: loss under the broadcast θ minus loss under θ_i, per row, (rows,).

    The node's local steps lowered its own rows' loss most, if they left a trace of them.
    """
    return row_losses(before, rows, config, seed) - row_losses(after, rows, config, seed)


def tracing_scores(encoder: nn.Module, rows: Tensor, reference: Tensor, released_mean: np.ndarray) -> np.ndarray:
    """The tracing attack on a released mean embedding: ⟨z(x) − μ_ref, μ_i − μ_ref⟩ per row, (rows,).

    ``encoder`` is the θ_i μ_i was computed under; μ_ref is the mean embedding of ``reference``, rows the
    attacker knows are not the node's. A row that counted in μ_i pulled it toward its own embedding.
    """
    z_ref = embed(encoder, reference).double()
    centre = z_ref.mean(dim=0)
    direction = torch.as_tensor(released_mean, dtype=torch.float64) - centre  # μ_i − μ_ref, (dim,)
    return ((embed(encoder, rows).double() - centre) @ direction).numpy()


@dataclass
class CuriousServer:
    """An ``on_updates`` callback of :func:`fedcl.federated.run_federation`: the honest-but-curious
    server, scoring each audited node's candidate rows from the θ it broadcast and the update and μ_i
    the node sent, every round.

    Parameters
    ----------
    encoder : nn.Module
        An encoder of the federation's architecture (its parameters are overwritten).
    rows : dict of name -> AuditRows
        The audited nodes and the rows the server tests against each.
    config : FedCLConfig
    seed : int, default=0
        Seed of the loss draws.

    Attributes
    ----------
    scores_ : dict of attack name -> dict of node name -> ndarray of shape (candidates,)
        Membership scores of each node's :attr:`AuditRows.candidates` (higher = member), per attack:
        ``"update loss drop, last round"``, ``"update loss drop, all rounds"`` (summed),
        ``"tracing on μ_i, last round"``, ``"tracing on μ_i, all rounds"`` (summed).
    """

    encoder: nn.Module
    rows: dict[str, AuditRows]
    config: FedCLConfig
    seed: int = 0
    scores_: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, init=False)

    def __call__(self, round_: int, arrays: list[np.ndarray], names: list[str], updates: list[LocalUpdate]) -> None:
        before, after = self.encoder, copy.deepcopy(self.encoder)
        set_arrays(before, arrays)
        for name, update in zip(names, updates):
            if name not in self.rows:
                continue
            audit = self.rows[name]
            set_arrays(after, [a + d for a, d in zip(arrays, update.delta)])  # θ_i, as the server rebuilds it
            drop = loss_drop_scores(before, after, audit.candidates, self.config, self.seed)
            trace = tracing_scores(after, audit.candidates, audit.reference, update.mean_embedding)
            self._keep("update loss drop", name, drop)
            self._keep("tracing on μ_i", name, trace)

    def _keep(self, attack: str, node: str, scores: np.ndarray) -> None:
        """This round's scores as the last round's, and added to the sum over rounds."""
        self.scores_.setdefault(f"{attack}, last round", {})[node] = scores
        summed = self.scores_.setdefault(f"{attack}, all rounds", {})
        summed[node] = summed.get(node, 0.0) + scores


def membership_advantage(is_member: np.ndarray, scores: np.ndarray) -> float:
    """max over thresholds t of TPR(t) − FPR(t), calling "member" when the score is ≥ t (Yeom et al. 2018).

    The threshold is chosen on the scored rows themselves (the attacker's best case); with m rows a
    side, chance alone gives about 1/√m.
    """
    fpr, tpr, _ = roc_curve(is_member, scores)
    return float(np.max(tpr - fpr))


def tpr_at_fpr(is_member: np.ndarray, scores: np.ndarray, fpr_target: float = LOW_FPR) -> float:
    """The highest TPR among thresholds whose FPR is at most ``fpr_target`` (Carlini et al. 2022)."""
    fpr, tpr, _ = roc_curve(is_member, scores)
    return float(np.max(tpr[fpr <= fpr_target]))


def membership_metrics(is_member: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, advantage and TPR at FPR :data:`LOW_FPR` of one attack on one node.

    Parameters
    ----------
    is_member : ndarray of shape (rows,)
        1 for a row the node trained on, 0 otherwise.
    scores : ndarray of shape (rows,)
        The attack's scores, higher = member.

    Returns
    -------
    dict with ``auroc``, ``advantage``, ``tpr_at_1pct_fpr``
    """
    if not np.isfinite(scores).all():
        raise ValueError("membership scores must be finite")
    return {"auroc": float(roc_auc_score(is_member, scores)), "advantage": membership_advantage(is_member, scores),
            "tpr_at_1pct_fpr": tpr_at_fpr(is_member, scores, LOW_FPR)}


def dp_advantage_bound(epsilon: float, delta: float) -> float:
    """The largest membership advantage TPR − FPR any attack has against an (ε, δ)-DP release of a row,
    (e^ε − 1 + 2δ)/(e^ε + 1); 1 without DP (ε = inf).

    Any test of "row in" against "row out" has TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε·(1 − TPR) + δ
    (Kairouz et al. 2015); TPR − FPR is largest where both hold with equality.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if math.isinf(epsilon):
        return 1.0
    return min(1.0, (math.expm1(epsilon) + 2 * delta) / (math.exp(epsilon) + 1))
