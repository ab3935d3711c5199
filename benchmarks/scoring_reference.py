"""FedCLDetector's scoring as it was before the chunk scorer, kept as the reference the fast path must match.

Frozen copies of ``NodeScaler.transform`` (float64 copy of the rows, numpy in place) and of
``FedCLDetector.decision_function`` (4,096-row chunks, a fresh tensor per layer, ``torch.topk`` over all
references). ``benchmarks/scoring_throughput.py`` times them against today's code in the same run and
``tests/model/test_detector_scoring.py`` checks that today's scores equal theirs.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_array

REFERENCE_CHUNK = 4096


def reference_transform(scaler, X: np.ndarray) -> np.ndarray:
    """``NodeScaler.transform`` as it was: signed log1p, z-score with the fitted statistics, clip; float32."""
    X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
    if X.shape[1] != scaler.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} columns, but NodeScaler was fitted with {scaler.n_features_in_}")
    Z = np.abs(X, dtype=np.float32)
    np.log1p(Z, out=Z)
    np.copysign(Z, X, out=Z, casting="same_kind")
    Z -= scaler.mean_.astype(np.float32)
    Z /= scaler.scale_.astype(np.float32)
    if not scaler.keep_missing:
        np.nan_to_num(Z, copy=False, nan=0.0)
    return np.clip(Z, -scaler.clip, scaler.clip, out=Z)


@torch.inference_mode()
def reference_knn(z_norm: torch.Tensor, references: torch.Tensor, k: int, skip: int = 0,
                  spacing: tuple[torch.Tensor, float] | None = None) -> np.ndarray:
    """Mean distance of each row to its ``k`` nearest references but the ``skip`` nearest, with ``torch.topk``;
    with ``spacing`` (radii, median, weight), divided by median + weight × those references' mean radius."""
    ref_sq = (references * references).sum(dim=1)
    out = []
    for chunk in z_norm.split(REFERENCE_CHUNK):
        partial = torch.addmm(ref_sq, chunk, references.T, alpha=-2)  # ‖a‖² + ‖r‖² − 2 a·r, less ‖a‖²
        nearest = partial.topk(k, dim=1, largest=False)
        distance = (nearest.values + (chunk * chunk).sum(dim=1, keepdim=True))[:, skip:].clamp_min_(0).sqrt_().mean(dim=1)
        if spacing is not None:
            radii, median, weight = spacing
            distance = distance / (median + weight * radii[nearest.indices[:, skip:]].mean(dim=1))
        out.append(distance)
    return torch.cat(out).numpy().astype(np.float64)


@torch.inference_mode()
def reference_scores(detector, X: np.ndarray) -> np.ndarray:
    """``FedCLDetector.decision_function`` as it was, shape (n,)."""
    X = np.asarray(X)
    detector.encoder.eval()
    k = min(detector.n_neighbors, len(detector.references_))
    chunks = []
    for lo in range(0, len(X), REFERENCE_CHUNK):
        scaled = torch.from_numpy(reference_transform(detector.scaler_, X[lo : lo + REFERENCE_CHUNK]))
        z_norm = (detector.encoder(scaled) - detector.mean_) / detector.std_
        chunks.append(reference_knn(z_norm, detector.references_, k, spacing=detector._spacing))
    return np.concatenate(chunks) if chunks else np.empty(0)
