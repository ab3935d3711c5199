"""A node's detector read back from its bundle: NodeScaler, ONNX encoder(s), (z − μ)/σ, k-NN score, threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from fedcl.data import NodeScaler
from fedcl.edge._format import ARRAY_NAMES, ARRAYS_FILE, ENCODERS_FILE, SPACING_NAMES, content_hash, read_manifest
from fedcl.errors import InputError
from fedcl.model._combine import COMBINE, combine_views  # numpy only: fedcl.model loads torch lazily

# Rows per ONNX Runtime call: bounds the (rows, references) distance block as the torch path does.
_CHUNK = 2048


class BundleDetector:
    """The detector of one node as :mod:`fedcl.export` wrote it, scored without torch.

    Each view (``shared``, and ``own`` and maybe ``tuned`` for a personal detector) does what
    :class:`fedcl.model.FedCLDetector` does: scale the row with the node's
    :class:`~fedcl.data.NodeScaler` (NaN kept), embed it with the ONNX encoder (which reads NaN as the
    node's mean), normalise z̃ = (z − μ)/σ (float32 up to here, as torch), and score it by the mean
    distance to its ``n_neighbors`` nearest references (float64), over their spacing when the view has
    ``radii`` and ``spacing`` (relative scores, format version 3). A personal detector maps each view's
    scores by its scale and combines them with their weights (:class:`fedcl.model.PersonalDetector`;
    ``scales`` and ``weights`` from version 4, two views' ``own_scale`` and ``shared_weight`` before).
    Build it with :func:`load_bundle`.

    Attributes
    ----------
    manifest : dict
        bundle.json as written by the export.
    node : str
    threshold_ : float
        A score above it is an alarm.
    window : int
        The node's vote window.
    leakage_guard : str
        The run's guard (``strict``, ``on`` or ``off``), applied to rows before scoring.
    content_hash : str
        Hex SHA-256 of what decides the scores (:func:`fedcl.edge._format.content_hash`).
    """

    def __init__(self, manifest: dict, session, arrays: dict[str, np.ndarray]) -> None:
        self.manifest = manifest
        self.node = manifest["node"]
        self.threshold_ = float(manifest["threshold"])
        self.window = int(manifest["window"])
        self.leakage_guard = manifest["leakage_guard"]
        self.content_hash = content_hash(manifest)
        self.views = list(manifest["views"])
        self.combine = manifest.get("combine")
        self.scales, self.weights = _scales_and_weights(manifest)
        self._session = session
        self._scalers = {v: _scaler(arrays[f"{v}.scaler_mean"], arrays[f"{v}.scaler_scale"], manifest["clip"])
                         for v in self.views}
        # views with equal scaler arrays share a key (the first such view's name)
        self._scaler_key = {v: next(w for w in self.views if _same_scaler(self._scalers[v], self._scalers[w]))
                            for v in self.views}
        self._mu = {v: arrays[f"{v}.mean"] for v in self.views}
        self._sigma = {v: arrays[f"{v}.std"] for v in self.views}
        self._refs = {v: arrays[f"{v}.references"].astype(np.float64) for v in self.views}
        self._ref_sq = {v: (r * r).sum(axis=1) for v, r in self._refs.items()}  # (references,)
        self._k = {v: min(int(manifest["n_neighbors"]), len(r)) for v, r in self._refs.items()}
        self._spacing = {v: (arrays[f"{v}.radii"].astype(np.float64), float(arrays[f"{v}.spacing"]))
                         if f"{v}.radii" in arrays else None for v in self.views}
        self._local_weight = manifest.get("local_weight")

    @property
    def n_features(self) -> int:
        return len(self.manifest["feature_names"])

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of raw rows ``X`` (n, n_features), NaN allowed, shape (n,) float64; higher = more
        anomalous."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InputError(f"rows have shape {X.shape}; the bundle of node {self.node!r} scores "
                             f"{self.n_features} features")
        view_scores = {v: np.empty(len(X)) for v in self.views}
        # One BLAS thread: the (rows, 32) x (32, references) products are too small to share, and
        # OpenBLAS's threads made them ~10x slower on a busy 2-core machine (ONNX Runtime keeps its own).
        with threadpool_limits(limits=1, user_api="blas"):
            for lo in range(0, len(X), _CHUNK):
                for v, s in self._score_chunk(X[lo : lo + _CHUNK]).items():
                    view_scores[v][lo : lo + _CHUNK] = s
        if self.views == ["shared"]:
            return view_scores["shared"]
        return combine_views(self.combine, view_scores, self.scales, self.weights)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for an anomaly (score above ``threshold_``), 0 otherwise."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def _score_chunk(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each view's scores of raw rows ``x`` (rows, n_features)."""
        scaled = {}  # the views are fitted on the same rows: scale once when their scalers agree
        for key in self._scaler_key.values():
            if key not in scaled:
                scaled[key] = self._scalers[key].transform(x)
        feed = {f"x_{v}": scaled[self._scaler_key[v]] for v in self.views}
        embeddings = self._session.run([f"z_{v}" for v in self.views], feed)  # each (rows, dim)
        return {v: self._knn(v, (z - self._mu[v]) / self._sigma[v])
                for v, z in zip(self.views, embeddings, strict=True)}

    def _knn(self, view: str, z: np.ndarray) -> np.ndarray:
        """Mean distance of each row of z̃ (rows, dim) to its k nearest references.

        In float64: in float32, ‖z‖² + ‖r‖² − 2 z·r cancels for rows near a reference, and FedCLDetector's
        float32 scores sit up to ~1e-3 relative from the exact ones there (docs/gateway.md, "Parity").
        """
        z = z.astype(np.float64)
        refs, k = self._refs[view], self._k[view]
        partial = z @ refs.T  # ‖z − r‖² without ‖z‖² (constant per row): (rows, references)
        partial *= -2
        partial += self._ref_sq[view]
        smallest = np.partition(partial, k - 1, axis=1)
        nearest = smallest[:, :k] + (z * z).sum(axis=1, keepdims=True)
        distance = np.sqrt(np.maximum(nearest, 0)).mean(axis=1)
        if self._spacing[view] is None:
            return distance
        radii, median = self._spacing[view]
        chosen = partial <= smallest[:, k - 1 : k]  # those k references (ties: coinciding ones, equal radii)
        local = (chosen @ radii) / chosen.sum(axis=1)
        return distance / (median + self._local_weight * local)


def _same_scaler(a: NodeScaler, b: NodeScaler) -> bool:
    """Whether two fitted scalers transform every row alike."""
    return np.array_equal(a.mean_, b.mean_) and np.array_equal(a.scale_, b.scale_) and a.clip == b.clip


def _scales_and_weights(manifest: dict) -> tuple[dict, dict]:
    """A personal bundle's view -> scale and view -> weight (bundles before version 4 hold the own view's
    scale into the shared view's units and the shared view's weight, 0.5 before weighted combining)."""
    if "scales" in manifest or "weights" in manifest:
        return manifest.get("scales"), manifest.get("weights")
    shared = manifest.get("shared_weight", 0.5)
    own = 1 - shared if isinstance(shared, (int, float)) else None  # not a number: the check names the shared view
    return {"shared": 1.0, "own": manifest.get("own_scale")}, {"shared": shared, "own": own}


def _scaler(mean: np.ndarray, scale: np.ndarray, clip: float) -> NodeScaler:
    """The node's fitted NodeScaler (NaN kept: the encoder reads a missing cell itself)."""
    scaler = NodeScaler(clip=float(clip), keep_missing=True)
    scaler.mean_, scaler.scale_, scaler.n_features_in_ = mean, scale, len(mean)
    return scaler


def _check_combining(bundle: Path, manifest: dict) -> None:
    """InputError unless a personal bundle's combine rule, and each view's scale and weight, can score."""
    if manifest.get("combine") not in COMBINE:
        raise InputError(f"{bundle}: unknown combine rule {manifest.get('combine')!r}")
    scales, weights = _scales_and_weights(manifest)
    for kind, values, bounds, ok in (("scale", scales, "> 0", lambda x: 0 < x < np.inf),
                                     ("weight", weights, "in [0, 1]", lambda x: 0 <= x <= 1)):
        for view in manifest["views"]:
            value = values.get(view) if isinstance(values, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise InputError(f"{bundle}: view {view!r} needs a finite {kind} {bounds}, not {value!r}")
    total = sum(weights[view] for view in manifest["views"])
    if manifest["combine"] in ("weighted", "tuned") and abs(total - 1) > 1e-9:
        raise InputError(f"{bundle}: the weights of its views sum to {total!r}, not 1")


def load_bundle(bundle: str | Path) -> BundleDetector:
    """Read and check the bundle in directory ``bundle`` (see :func:`fedcl.edge._format.read_manifest`).

    Raises
    ------
    InputError
        If ``bundle`` is not a complete, unchanged bundle this fedcl can read.
    """
    import onnxruntime  # here, not at import: `fedcl detect --model` never needs it

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    with np.load(bundle / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    missing = [f"{v}.{a}" for v in manifest["views"] for a in ARRAY_NAMES if f"{v}.{a}" not in arrays]
    for v in manifest["views"]:
        spacing = [f"{v}.{a}" for a in SPACING_NAMES]
        if any(name in arrays for name in spacing):  # both or neither
            missing += [name for name in spacing if name not in arrays]
    if missing:
        raise InputError(f"{bundle / ARRAYS_FILE}: missing array(s) {', '.join(missing)}")
    for v in (v for v in manifest["views"] if f"{v}.radii" in arrays):
        weight, spacing = manifest.get("local_weight"), arrays[f"{v}.spacing"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < np.inf:
            raise InputError(f"{bundle}: relative scores need a finite local_weight >= 0, not {weight!r}")
        if arrays[f"{v}.radii"].shape != arrays[f"{v}.references"].shape[:1] or not 0 < spacing < np.inf:
            raise InputError(f"{bundle / ARRAYS_FILE}: {v}.radii and {v}.spacing do not fit its references")
    if len(manifest["views"]) > 1:
        _check_combining(bundle, manifest)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are not the operator's business
    session = onnxruntime.InferenceSession(str(bundle / ENCODERS_FILE), options, providers=["CPUExecutionProvider"])
    return BundleDetector(manifest, session, arrays)
