"""The detector a node deploys: scaler + federated encoder + node normalisation + k-NN score + threshold."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from fedcl.data import NodeScaler
from fedcl.errors import check_fraction
from fedcl.model._encoders import MLPEncoder
from fedcl.model._islands import island_rows
from fedcl.model._threshold import threshold_at_fpr

# Rows per pass: enough to amortise each call's overhead, few enough that a chunk's buffers (hidden
# layers, distances: ~4 MB at 2,048 rows) mostly stay in cache. Measured best of 512 to 8,192.
_CHUNK = 2048
# How much a row's nearest references' own spacing counts against the node's median spacing in a relative
# score (0: the node's median alone): the default of ``local_weight``, chosen on the development seed among
# 0, 0.5, 1 and 2 (docs/benchmark.md, "Design study: relative distances").
LOCAL_WEIGHT = 0.5


class FedCLDetector(BaseEstimator):
    """Anomaly detector for one node, PyOD-style (higher score = more anomalous).

    The score of a row is its mean Euclidean distance, in the node's normalised embedding space z̃,
    to its ``n_neighbors`` nearest benign references: k-means centroids of the node's benign
    training embeddings, in units of how far apart those references sit (``relative``). Benign
    traffic is compact there; attacks fall outside. Centroids bound
    the cost of a score whatever the node's size (and scored as well as all training rows on
    fedmse-iid); k > 1 matters because trivial rows (e.g. ``1,60,0,...``) occur verbatim in benign
    and attack files, and a 1-NN score would tie them all at 0.

    Parameters
    ----------
    encoder : torch.nn.Module
        The trained (federated) encoder f_θ; not modified.
    normalise : bool, default=True
        Apply the node's embedding normalisation z̃ = (z − μ_i)/σ_i.
    n_neighbors : int, default=5
        k of the k-NN score.
    n_references : int, default=256
        Most k-means centroids.
    relative : bool, default=True
        Divide the distance by s + ``local_weight`` × ρ(x): a reference's spacing is its mean distance
        to its ``n_neighbors`` nearest other references, s is the median of the positive spacings of
        the node's references and ρ(x) the mean spacing of the row's nearest ones (a ratio, as LOF's).
        A node whose benign traffic sits in tight modes and one whose traffic is spread then score on
        one scale, so their scores pool: with absolute distances, a node from another network in an
        N-BaIoT federation put its attacks below the other nodes' benign rows (docs/benchmark.md).
        False: the distance itself (runs saved before the key).
    local_weight : float, default=LOCAL_WEIGHT (0.5)
        Weight of the local spacing ρ(x) in a relative score; saved with the fitted state.
    rows_per_reference : int, default=2
        A node of n training rows (after trimming) gets min(``n_references``, ⌈n / rows_per_reference⌉)
        centroids (at least ``n_neighbors``; a node with no more rows uses the rows themselves), so a
        small node's references each average a few rows: scored against the rows themselves (1, the
        former rule for nodes of at most ``n_references`` rows), a node of a few hundred rows let any
        odd training row vouch for its neighbourhood (docs/benchmark.md).
    fpr_target : float, default=0.01
        The threshold is the (1 − fpr_target) quantile of benign validation scores.
    clip : float, default=10.0
        Bound of the scaled features, passed to :class:`fedcl.data.NodeScaler`.
    random_state : int, default=0
        Seed of k-means (and of the sample the islands are looked for in, on nodes of over 4,096 rows).
    trim_fraction : float, default=0.0
        At most this share of the training rows is left out of the references: the rows of
        *islands*, small groups (5 rows to 5 % of the rows) of embeddings that are dense but far
        apart from the rest, as the repetitive rows of an attack caught in the benign training
        window are (:func:`fedcl.model.island_rows`). 0: every row is used.
    public : {"nbaiot", "auto"}, optional
        Scale rows with this schema's public statistics instead of the node's
        (:func:`fedcl.data.public_statistics`): for an encoder trained so under differential privacy.
    validation_references : bool, default=False
        Once the validation rows are scored against references of the training rows alone (the threshold
        and ``validation_scores_`` stay those out-of-sample scores), build the references again from the
        training and validation rows together, in the frame (scaler, μ_i, σ_i) of the training rows: a
        small node's rare benign modes get more cover (a design study: docs/benchmark.md).

    Attributes
    ----------
    scaler_ : NodeScaler
        Fitted on the node's benign training rows.
    mean_, std_ : Tensor of shape (dim,)
        The node's embedding statistics μ_i, σ_i.
    references_ : Tensor of shape (m, dim), m ≤ n_references
        Benign reference points in z̃ space.
    radii_ : Tensor of shape (m,)
        Each reference's spacing (``relative`` only).
    spacing_ : float
        The median of the positive spacings, 1 if none is (``relative`` only).
    n_trimmed_ : int
        Training rows left out of the references (islands); not part of :meth:`state_dict`.
    decision_scores_ : ndarray of shape (n_samples,)
        Scores of the training rows.
    threshold_ : float
    validation_scores_ : ndarray of shape (n_val,)
        Scores of ``X_val`` against the training rows' references (when given).
    """

    def __init__(self, encoder: nn.Module, *, normalise: bool = True, n_neighbors: int = 5,
                 n_references: int = 256, relative: bool = True, local_weight: float = LOCAL_WEIGHT,
                 rows_per_reference: int = 2,
                 fpr_target: float = 0.01, clip: float = 10.0, random_state: int = 0,
                 trim_fraction: float = 0.0, public: str | None = None, validation_references: bool = False) -> None:
        self.encoder = encoder
        self.normalise = normalise
        self.n_neighbors = n_neighbors
        self.n_references = n_references
        self.relative = relative
        self.local_weight = local_weight
        self.rows_per_reference = rows_per_reference
        self.fpr_target = fpr_target
        self.clip = clip
        self.random_state = random_state
        self.trim_fraction = trim_fraction
        self.public = public
        self.validation_references = validation_references

    def fit(self, X: np.ndarray, y: None = None, X_val: np.ndarray | None = None) -> "FedCLDetector":
        """Learn the node's statistics and k-NN references from benign rows ``X`` (n, 115), NaN allowed.

        The threshold comes from the scores of ``X_val`` (held-out benign rows) when given, else from
        the training scores, as PyOD does.
        """
        check_fraction("fpr_target", self.fpr_target)  # before the work, not after
        if not 1 <= self.n_neighbors <= self.n_references:
            raise ValueError(f"need 1 <= n_neighbors <= n_references, got {self.n_neighbors}, {self.n_references}")
        if not self.rows_per_reference >= 1:
            raise ValueError(f"rows_per_reference must be >= 1, got {self.rows_per_reference!r}")
        if not 0 <= self.trim_fraction < 0.5:
            raise ValueError(f"trim_fraction must be in [0, 0.5), got {self.trim_fraction!r}")
        self.scaler_ = NodeScaler(clip=self.clip, keep_missing=True, public=self.public).fit(X)  # NaN: read by the encoder
        z = self._embed(self.scaler_.transform(X))
        self.mean_ = z.mean(dim=0) if self.normalise else torch.zeros(z.shape[1])
        self.std_ = z.std(dim=0, correction=0) + 1e-6 if self.normalise else torch.ones(z.shape[1])
        z_norm = (z - self.mean_) / self.std_
        trimmed = island_rows(z_norm.numpy(), self.trim_fraction, self.random_state)
        self.n_trimmed_ = int(trimmed.sum())
        kept = z_norm[torch.from_numpy(~trimmed)]
        if self._fit_references(kept):
            self.decision_scores_ = self._score(z_norm)
        else:
            # The references are the kept rows, each its own nearest reference (distance 0): score
            # them leave-one-out so a threshold fitted on them is not too low.
            self.decision_scores_ = np.empty(len(z_norm))
            self.decision_scores_[~trimmed] = self._score(kept, skip_self=True)
            if self.n_trimmed_:
                self.decision_scores_[trimmed] = self._score(z_norm[torch.from_numpy(trimmed)])
        # Without validation rows, the kept rows calibrate: islands sit far from references built without them.
        if X_val is None:
            self.threshold_ = threshold_at_fpr(self.decision_scores_[~trimmed], self.fpr_target)
            return self
        self.validation_scores_ = self.decision_function(X_val)
        self.threshold_ = threshold_at_fpr(self.validation_scores_, self.fpr_target)
        if self.validation_references:
            self._fit_references(torch.cat([kept, (self._embed(self.scaler_.transform(X_val)) - self.mean_) / self.std_]))
        return self

    def _fit_references(self, rows: Tensor) -> bool:
        """``references_`` (and spacing) from embedded ``rows``: k-means centroids, or the rows themselves when
        there are too few (then False: each row is its own nearest reference)."""
        n_references = min(self.n_references, max(self.n_neighbors, math.ceil(len(rows) / self.rows_per_reference)))
        centroids = len(rows) > n_references
        if centroids:
            km = KMeans(n_references, n_init=1, random_state=self.random_state).fit(rows.numpy())
            self.references_ = torch.as_tensor(km.cluster_centers_, dtype=torch.float32)
        else:
            self.references_ = rows.clone()
        self._fit_spacing()
        return centroids

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of rows ``X`` (n, 115), shape (n,); higher = more anomalous."""
        check_is_fitted(self, "references_")
        X = np.asarray(X)
        scores = np.empty(len(X))
        if not len(X):
            return scores
        with torch.inference_mode():
            scorer = _ChunkScorer(self, rows=min(len(X), _CHUNK))
            # checked once, scaled into the scorer's buffers
            blocks = self.scaler_.iter_transform(X, rows=_CHUNK, out=scorer.scaled.numpy(),
                                                 work=scorer.scaler_work)
            for lo, scaled in zip(range(0, len(X), _CHUNK), blocks):
                scores[lo : lo + len(scaled)] = scorer(torch.from_numpy(scaled)).numpy()
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for an anomaly (score above ``threshold_``), 0 otherwise."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def state_dict(self) -> dict[str, Tensor]:
        """Fitted state as tensors only, so it loads with ``torch.load(weights_only=True)``."""
        check_is_fitted(self, "references_")
        return {
            "scaler_mean": torch.as_tensor(self.scaler_.mean_),
            "scaler_scale": torch.as_tensor(self.scaler_.scale_),
            "mean": self.mean_,
            "std": self.std_,
            "references": self.references_,
            "threshold": torch.tensor(self.threshold_, dtype=torch.float64),
        } | ({"radii": self.radii_, "spacing": torch.tensor(self.spacing_, dtype=torch.float64),
              "local_weight": torch.tensor(self.local_weight, dtype=torch.float64)} if self.relative else {})

    def load_state_dict(self, state: dict[str, Tensor]) -> "FedCLDetector":
        """Restore a fitted detector from :meth:`state_dict` (the encoder is given at construction)."""
        scaler = NodeScaler(clip=self.clip, keep_missing=True)
        scaler.mean_ = state["scaler_mean"].numpy()
        scaler.scale_ = state["scaler_scale"].numpy()
        scaler.n_features_in_ = len(scaler.mean_)
        self.scaler_ = scaler
        self.mean_, self.std_ = state["mean"], state["std"]
        self.references_ = state["references"]
        if ("radii" in state) != self.relative:  # its scores and threshold are in the other units
            raise ValueError(f"the saved state scores {'relative' if 'radii' in state else 'absolute'} distances; "
                             f"this detector was built with relative={self.relative}")
        if self.relative:
            self.radii_, self.spacing_ = state["radii"], float(state["spacing"])
            self.local_weight = float(state["local_weight"])
        self.threshold_ = float(state["threshold"])
        return self

    def _fit_spacing(self) -> None:
        """``radii_`` and ``spacing_`` from the references (``relative`` only)."""
        if not self.relative:
            return
        refs = self.references_
        k = min(self.n_neighbors, len(refs) - 1)
        if k < 1:
            self.radii_, self.spacing_ = torch.zeros(len(refs)), 1.0
            return
        # float64 and no matmul shortcut: coinciding references must come out 0 apart, not ~0.1
        apart = torch.cdist(refs.double(), refs.double(), compute_mode="donot_use_mm_for_euclid_dist")
        self.radii_ = apart.fill_diagonal_(float("inf")).topk(k, dim=1, largest=False).values.mean(dim=1).float()
        positive = self.radii_[self.radii_ > 0]  # repeated rows make centroids that coincide
        self.spacing_ = float(positive.quantile(0.5)) if len(positive) else 1.0  # median() takes the lower one

    @property
    def _spacing(self) -> tuple[Tensor, float, float] | None:
        """(radii, median spacing, local weight) for a relative score, None for the distance itself."""
        return (self.radii_, self.spacing_, self.local_weight) if self.relative else None

    @torch.inference_mode()
    def _embed(self, x_scaled: np.ndarray) -> Tensor:
        self.encoder.eval()
        return self.encoder(torch.from_numpy(np.ascontiguousarray(x_scaled, dtype=np.float32)))

    @torch.inference_mode()
    def _score(self, z_norm: Tensor, skip_self: bool = False) -> np.ndarray:
        k = min(self.n_neighbors + skip_self, len(self.references_))
        refs = self.references_
        ref_sq = (refs * refs).sum(dim=1)  # (references,)
        dist = torch.empty(min(len(z_norm), _CHUNK), len(refs))  # bounds the (rows, references) block
        work = np.empty(dist.shape, dtype=np.float32) if self.relative else None
        out = [_knn_scores(chunk, refs, ref_sq, k, int(skip_self), dist[: len(chunk)], self._spacing,
                           None if work is None else work[: len(chunk)]) for chunk in z_norm.split(_CHUNK)]
        return torch.cat(out).numpy().astype(np.float64)


def _knn_scores(z: Tensor, refs: Tensor, ref_sq: Tensor, k: int, skip: int, dist: Tensor,
                spacing: tuple[Tensor, float, float] | None = None, work: np.ndarray | None = None) -> Tensor:
    """Mean distance of each row of ``z`` (rows, dim) to its ``k`` nearest ``refs`` (references, dim) but
    the ``skip`` nearest, shape (rows,); ``ref_sq`` is ‖r‖² (references,), ``dist`` a (rows, references) buffer.
    With ``spacing`` (radii, s, w), divided by s + w × the mean radius of those references; ``work``, a
    float32 buffer of ``dist``'s shape, then spares two allocations."""
    # ‖a − r‖² = ‖a‖² + ‖r‖² − 2 a·r: one matmul instead of cdist; (rows, references)
    partial = torch.addmm(ref_sq, z, refs.T, alpha=-2, out=dist).numpy()
    # numpy's vectorised sort gives the values torch.topk(k) gives, in the same order, ~7x faster on 256
    # columns; the sum of the k nearest then rounds as before. A relative score reads the distances in
    # place afterwards, so it sorts a copy.
    ordered = partial
    if spacing is not None:
        ordered = np.empty_like(partial) if work is None else work
        np.copyto(ordered, partial)
    ordered.sort(axis=1)
    nearest = torch.from_numpy(ordered[:, :k]) + (z * z).sum(dim=1, keepdim=True)
    distance = nearest[:, skip:].clamp_min_(0).sqrt_().mean(dim=1)
    if spacing is None:
        return distance
    # Which references those are, without an argsort: those within the k-th distance (and past the skipped
    # ones); ties can only be coinciding references, whose radii agree. The mask (as 0/1) takes the sorted
    # copy's buffer, read by now.
    kth, lower = ordered[:, k - 1 : k].copy(), ordered[:, skip - 1 : skip].copy() if skip else None
    chosen = np.less_equal(partial, kth, out=ordered)
    if skip:
        chosen *= partial > lower
    radii, median, weight = spacing
    chosen_t = torch.from_numpy(chosen)  # torch's matmul keeps to its one thread; numpy's BLAS may not
    local = (chosen_t @ radii.to(chosen_t.dtype)) / chosen_t.sum(dim=1).clamp_min_(1)
    return distance / (median + weight * local)


def _plain_mlp(encoder: nn.Module) -> list[nn.Module] | None:
    """The layers of an :class:`MLPEncoder` that reads values only, made of float32 Linear and GELU layers;
    None for any other encoder."""
    if type(encoder) is not MLPEncoder or encoder.missing_mask:
        return None
    layers = list(encoder.net)
    plain = bool(layers) and isinstance(layers[0], nn.Linear) and all(
        isinstance(layer, (nn.Linear, nn.GELU)) for layer in layers)
    float32 = all(p.dtype == torch.float32 for p in encoder.parameters())
    return layers if plain and float32 else None


class _ChunkScorer:
    """``decision_function`` on chunks of at most ``rows`` rows, into buffers reused from chunk to chunk.

    The arithmetic of the plain composition (NodeScaler.transform, the encoder, (z − μ)/σ, the k-NN
    score), step for step, so the scores are the same bit for bit (tests/model/test_detector_scoring.py);
    for a plain :class:`MLPEncoder` each layer writes into its own buffer instead of a fresh tensor.
    One arena serves in turn as the scaler's scratch (``scaler_work``), the hidden layers but the last,
    and the distances: each use ends before the next begins, and a chunk touches ~3 MB instead of ~8, so
    more of it stays in the core's 2 MB L2 (~1.1x end to end). Build it under ``torch.inference_mode``.
    """

    def __init__(self, detector: FedCLDetector, rows: int) -> None:
        self.encoder = detector.encoder.eval()
        self.layers = _plain_mlp(detector.encoder)
        self.mu, self.sigma = detector.mean_, detector.std_
        self.refs = detector.references_
        self.ref_sq = (self.refs * self.refs).sum(dim=1)  # (references,)
        self.k = min(detector.n_neighbors, len(self.refs))
        self.spacing = detector._spacing
        n_features = detector.scaler_.n_features_in_
        widths = [layer.out_features for layer in self.layers or [] if isinstance(layer, nn.Linear)]
        # The arena holds, one after the other: the scaler's 2 × (rows, features) scratch, the hidden
        # layers but the last side by side (a layer reads the one before), the (rows, references) distances.
        arena = torch.empty(rows * max(2 * n_features, sum(widths[:-1]), len(self.refs)))
        self.scaled = torch.empty(rows, n_features)  # the scaler's output, the encoder's input
        self.scaler_work = arena[: 2 * rows * n_features].view(2, rows, n_features).numpy()
        starts = np.cumsum([0, *widths[:-1]]) * rows
        self.hidden = [arena[start : start + rows * width].view(rows, width)
                       for start, width in zip(starts, widths[:-1])]
        self.hidden += [torch.empty(rows, width) for width in widths[-1:]]  # z, which the k-NN step reads
        self.dist = arena[: rows * len(self.refs)].view(rows, len(self.refs))
        self.work = None if self.spacing is None else np.empty((rows, len(self.refs)), dtype=np.float32)

    def __call__(self, scaled: Tensor) -> Tensor:
        """Scores (rows,) of scaled rows (rows, n_features), float32; may overwrite ``scaled``."""
        z_norm = self.embed(scaled)
        rows = len(scaled)
        return _knn_scores(z_norm, self.refs, self.ref_sq, self.k, 0, self.dist[:rows], self.spacing,
                           None if self.work is None else self.work[:rows])

    def embed(self, scaled: Tensor) -> Tensor:
        """Normalised embeddings z̃ = (f_θ(x) − μ)/σ (rows, dim) of scaled rows (NaN = missing); may
        overwrite ``scaled``."""
        if self.layers is None:
            return (self.encoder(scaled) - self.mu) / self.sigma
        return self._mlp(scaled).sub_(self.mu).div_(self.sigma)

    def _mlp(self, scaled: Tensor) -> Tensor:
        """MLPEncoder.forward (a missing cell reads as 0), each layer written into its buffer."""
        h = torch.nan_to_num_(scaled, nan=0.0)  # no inf is left after the scaler's clip
        buffers = iter(self.hidden)
        for layer in self.layers:
            if isinstance(layer, nn.GELU):
                torch.ops.aten.gelu_(h, approximate=layer.approximate)  # in place: h is our own buffer
            elif layer.bias is None:
                h = torch.mm(h, layer.weight.T, out=next(buffers)[: len(h)])
            else:
                h = torch.addmm(layer.bias, h, layer.weight.T, out=next(buffers)[: len(h)])
        return h
