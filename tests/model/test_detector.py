"""Contract and behaviour tests for FedCLDetector."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from fedcl.model import FedCLDetector, build_encoder

N_FEATURES = 115


def make_encoder(seed=0, hidden=32, dim=8):
    torch.manual_seed(seed)
    return build_encoder("mlp", N_FEATURES, hidden, dim)


def benign(n, seed=0):
    """Positive, heavy-ish tailed rows like traffic statistics."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=2.0, sigma=0.5, size=(n, N_FEATURES))


def attacks(n, seed=1):
    """Rows shifted far from the benign distribution."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(mean=6.0, sigma=0.5, size=(n, N_FEATURES))


@pytest.fixture(scope="module")
def fitted():
    X = benign(120)
    return FedCLDetector(make_encoder(), n_neighbors=3, rows_per_reference=1).fit(X), X  # references: the rows


def test_fit_returns_self_and_sets_fitted_attributes(fitted):
    detector, X = fitted

    assert isinstance(detector.threshold_, float)
    assert detector.references_.shape == (len(X), 8)
    assert detector.decision_scores_.shape == (len(X),)
    assert detector.mean_.shape == (8,) and detector.std_.shape == (8,)
    assert np.all(np.isfinite(detector.decision_scores_)) and np.all(detector.decision_scores_ >= 0)
    detector2 = FedCLDetector(make_encoder(), n_neighbors=3)
    assert detector2.fit(X) is detector2


def test_init_only_stores_parameters():
    encoder = make_encoder()

    detector = FedCLDetector(encoder, n_neighbors=-1, fpr_target=5.0)

    assert detector.encoder is encoder and detector.n_neighbors == -1 and detector.fpr_target == 5.0
    assert not hasattr(detector, "threshold_")


def test_references_are_normalised_training_embeddings(fitted):
    detector, _ = fitted

    refs = detector.references_

    torch.testing.assert_close(refs.mean(dim=0), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(refs.std(dim=0, correction=0), torch.ones(8), atol=1e-3, rtol=0)


def distances(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))


@pytest.mark.parametrize("relative", [True, False])
def test_decision_function_is_mean_distance_to_k_nearest_references_over_their_spacing(fitted, relative):
    _, X = fitted
    detector = FedCLDetector(make_encoder(), n_neighbors=3, n_references=40, relative=relative).fit(X)
    X_new = np.vstack([benign(10, seed=5), attacks(5)])

    scores = detector.decision_function(X_new)

    with torch.no_grad():
        z = detector.encoder(torch.from_numpy(detector.scaler_.transform(X_new)))
    z_norm = ((z - detector.mean_) / detector.std_).double().numpy()
    refs = detector.references_.double().numpy()
    dist = distances(z_norm, refs)
    nearest = np.argsort(dist, axis=1)[:, :3]
    expected = np.take_along_axis(dist, nearest, axis=1).mean(axis=1)
    if relative:  # over the median spacing plus half the spacing of those references
        apart = distances(refs, refs) + np.diag(np.full(len(refs), np.inf))
        radii = np.sort(apart, axis=1)[:, :3].mean(axis=1)
        expected /= np.median(radii) + 0.5 * radii[nearest].mean(axis=1)
    assert scores.shape == (15,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


def test_predict_is_binary_and_consistent_with_threshold(fitted):
    detector, _ = fitted
    X_new = np.vstack([benign(20, seed=6), attacks(20)])

    labels = detector.predict(X_new)

    scores = detector.decision_function(X_new)
    assert labels.shape == (40,)
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (scores > detector.threshold_).astype(int))
    assert labels[20:].sum() == 20  # far-away attacks are all flagged


def test_threshold_from_training_scores(fitted):
    detector, _ = fitted

    assert detector.threshold_ == pytest.approx(np.quantile(detector.decision_scores_, 0.99))


@pytest.mark.parametrize("fpr_target", [0.01, 0.1, 0.3])
def test_threshold_is_quantile_of_validation_scores(fpr_target):
    X, X_val = benign(100, seed=0), benign(40, seed=3)

    detector = FedCLDetector(make_encoder(), n_neighbors=3, fpr_target=fpr_target).fit(X, X_val=X_val)

    val_scores = detector.decision_function(X_val)
    assert detector.threshold_ == pytest.approx(np.quantile(val_scores, 1 - fpr_target))
    assert detector.threshold_ != pytest.approx(np.quantile(detector.decision_scores_, 1 - fpr_target))


@pytest.mark.parametrize("method", ["decision_function", "predict", "state_dict"])
def test_not_fitted_error(method):
    detector = FedCLDetector(make_encoder())

    with pytest.raises(NotFittedError):
        args = () if method == "state_dict" else (benign(3),)
        getattr(detector, method)(*args)


@pytest.mark.parametrize("params", [{"fpr_target": 0.0}, {"fpr_target": 1.0},
                                    {"n_neighbors": 0}, {"n_neighbors": 10, "n_references": 5},
                                    {"rows_per_reference": 0}, {"trim_fraction": -0.1}, {"trim_fraction": 0.5}])
def test_fit_rejects_bad_parameters(params):
    detector = FedCLDetector(make_encoder(), **params)

    with pytest.raises(ValueError):
        detector.fit(benign(30))


def test_state_dict_round_trip_through_torch_save(fitted, tmp_path):
    detector, _ = fitted
    X_new = np.vstack([benign(10, seed=7), attacks(10)])
    path = tmp_path / "detector.pt"

    torch.save(detector.state_dict(), path)
    state = torch.load(path, weights_only=True)
    restored = FedCLDetector(detector.encoder, n_neighbors=3).load_state_dict(state)

    np.testing.assert_array_equal(restored.decision_function(X_new), detector.decision_function(X_new))
    np.testing.assert_array_equal(restored.predict(X_new), detector.predict(X_new))
    assert restored.threshold_ == detector.threshold_
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_nan_rows_are_scored():
    X = benign(60)
    X[::7, ::5] = np.nan
    X_new = benign(10, seed=9)
    X_new[0, :] = np.nan
    X_new[1, 3] = np.nan

    detector = FedCLDetector(make_encoder(), n_neighbors=3).fit(X)
    scores = detector.decision_function(X_new)

    assert scores.shape == (10,)
    assert np.all(np.isfinite(scores))
    assert np.all(np.isfinite(detector.decision_scores_))


def normalised_embeddings(detector, X):
    with torch.no_grad():
        z = detector.encoder(torch.from_numpy(detector.scaler_.transform(X)))
    return ((z - detector.mean_) / detector.std_).double()


def test_n_references_caps_references_with_kmeans_centroids():
    X = benign(80)

    detector = FedCLDetector(make_encoder(), n_neighbors=3, n_references=20, random_state=1).fit(X)

    assert detector.references_.shape == (20, 8)
    assert detector.references_.dtype == torch.float32
    assert detector.decision_scores_.shape == (80,)
    # Each centroid is the mean of the training embeddings nearest to it (k-means fixed point).
    z = normalised_embeddings(detector, X)
    refs = detector.references_.double()
    nearest = ((z[:, None, :] - refs[None, :, :]) ** 2).sum(dim=2).argmin(dim=1)
    for c in range(20):
        torch.testing.assert_close(z[nearest == c].mean(dim=0), refs[c], atol=1e-4, rtol=0)


@pytest.mark.parametrize("n_rows, n_references, expected",
                         [(30, 256, 15), (31, 256, 16), (80, 20, 20), (4, 256, 3), (510, 256, 255), (511, 256, 256)])
def test_a_small_node_gets_a_centroid_per_two_rows_at_most(n_rows, n_references, expected):
    detector = FedCLDetector(make_encoder(), n_neighbors=3, n_references=n_references).fit(benign(n_rows))

    assert len(detector.references_) == expected


def test_few_rows_use_the_rows_themselves():
    X = benign(30)

    detector = FedCLDetector(make_encoder(), n_neighbors=3, n_references=30, rows_per_reference=1).fit(X)

    torch.testing.assert_close(detector.references_.double(), normalised_embeddings(detector, X),
                               atol=1e-5, rtol=0)


def test_kmeans_references_are_seeded():
    X = benign(80)

    a = FedCLDetector(make_encoder(), n_neighbors=3, n_references=20, random_state=1).fit(X)
    b = FedCLDetector(make_encoder(), n_neighbors=3, n_references=20, random_state=1).fit(X)

    assert torch.equal(a.references_, b.references_)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    assert a.threshold_ == b.threshold_


def test_encoder_is_not_modified():
    encoder = make_encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}

    FedCLDetector(encoder, n_neighbors=3).fit(benign(40))

    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_normalise_false_keeps_raw_embeddings():
    X = benign(40)

    detector = FedCLDetector(make_encoder(), n_neighbors=3, rows_per_reference=1, normalise=False).fit(X)

    assert torch.equal(detector.mean_, torch.zeros(8)) and torch.equal(detector.std_, torch.ones(8))
    with torch.no_grad():
        z = detector.encoder(torch.from_numpy(detector.scaler_.transform(X)))
    torch.testing.assert_close(detector.references_, z)


@pytest.mark.parametrize("seed, n_references, rows_per_reference", [(0, 256, 2), (1, 256, 2), (0, 32, 2), (0, 256, 1)])
def test_roc_auc_floor_with_random_encoder(seed, n_references, rows_per_reference):
    X_train, X_val = benign(200, seed=seed), benign(50, seed=seed + 10)
    X_test = np.vstack([benign(100, seed=seed + 20), attacks(100, seed=seed + 30)])
    y_test = np.r_[np.zeros(100), np.ones(100)]

    detector = FedCLDetector(make_encoder(seed), n_neighbors=5, n_references=n_references,
                             rows_per_reference=rows_per_reference).fit(X_train, X_val=X_val)
    scores = detector.decision_function(X_test)

    assert roc_auc_score(y_test, scores) > 0.9
    assert detector.predict(X_test[:100]).mean() < 0.2  # benign false-alarm rate near fpr_target


def test_training_scores_are_leave_one_out_when_references_are_the_rows():
    # Prepare: fewer rows than n_references, so the references are the training rows themselves
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(100, 115))
    detector = FedCLDetector(build_encoder("mlp", 115, 16, 8), n_references=256, rows_per_reference=1).fit(x)

    # Assert: no training row scores 0 against itself
    assert detector.decision_scores_.min() > 0


def repetitive_attacks(n, seed=2):
    """Near-copies of one attack row, as a flood repeats its packets."""
    rng = np.random.default_rng(seed)
    return attacks(1, seed) * rng.lognormal(0.0, 0.01, size=(n, N_FEATURES))


def fit_trimmed(X, rows_per_reference, trim_fraction):
    """A detector of up to 512 references: centroids (2 rows per reference) or the rows themselves (1)."""
    return FedCLDetector(make_encoder(), n_references=512, rows_per_reference=rows_per_reference,
                         trim_fraction=trim_fraction).fit(X)


@pytest.mark.parametrize("rows_per_reference", [2, 1])  # k-means centroids, or the rows themselves
def test_trimming_leaves_planted_attack_rows_out_of_the_references(rows_per_reference):
    X = np.vstack([benign(380), repetitive_attacks(20)])
    planted = np.r_[np.zeros(380, bool), np.ones(20, bool)]

    kept = fit_trimmed(X, rows_per_reference, 0.0)
    trimmed = fit_trimmed(X, rows_per_reference, 0.1)

    z = normalised_embeddings(trimmed, X[planted]).float()
    assert trimmed.n_trimmed_ == 20 and kept.n_trimmed_ == 0
    assert torch.cdist(z, kept.references_).min() < 0.1  # untrimmed: a centroid sits on the attack
    assert torch.cdist(z, trimmed.references_).min() > 1.0
    assert trimmed.decision_function(X[planted]).min() > np.quantile(trimmed.decision_function(X[~planted]), 0.99)
    # training scores: a kept row leaves itself out when the references are the rows; a trimmed row is not one
    scored = planted if rows_per_reference == 1 else slice(None)
    np.testing.assert_allclose(trimmed.decision_scores_[scored], trimmed.decision_function(X[scored]), rtol=1e-5)


@pytest.mark.parametrize("rows_per_reference", [2, 1])  # k-means centroids, or the rows themselves
def test_trimming_leaves_clean_references_unchanged(rows_per_reference):
    X = benign(400)

    plain = fit_trimmed(X, rows_per_reference, 0.0)
    trimmed = fit_trimmed(X, rows_per_reference, 0.1)

    assert trimmed.n_trimmed_ == 0
    assert torch.equal(plain.references_, trimmed.references_)
    np.testing.assert_array_equal(plain.decision_scores_, trimmed.decision_scores_)


def test_without_validation_rows_the_trimmed_rows_do_not_set_the_threshold():
    X = np.vstack([benign(380), repetitive_attacks(20)])
    planted = np.r_[np.zeros(380, bool), np.ones(20, bool)]

    detector = FedCLDetector(make_encoder(), n_references=64, trim_fraction=0.1).fit(X)

    assert detector.n_trimmed_ == 20
    kept_scores = detector.decision_scores_[~planted]
    assert detector.threshold_ == pytest.approx(np.quantile(kept_scores, 1 - detector.fpr_target), rel=1e-6)
    assert detector.threshold_ < np.quantile(detector.decision_scores_, 1 - detector.fpr_target)


@pytest.mark.parametrize("relative, most", [(True, 1.5), (False, None)])
def test_a_node_of_tight_modes_and_a_spread_node_score_on_one_scale(relative, most):
    # Prepare: one node's benign rows in four tight modes far apart (a device's few repeated patterns),
    # another's in one spread cloud; both thresholds from held-out benign rows
    rng = np.random.default_rng(0)
    modes = rng.lognormal(2.0, 1.0, size=(4, N_FEATURES))
    tight = modes[rng.integers(0, 4, 1500)] * rng.lognormal(0.0, 0.01, size=(1500, N_FEATURES))
    spread = benign(1500)

    # Execute
    nodes = [FedCLDetector(make_encoder(), relative=relative).fit(x[:1000], X_val=x[1000:]) for x in (tight, spread)]

    # Assert: relative scores put both alarm lines within 1.5x of each other (the distances themselves
    # 30x apart), and both nodes still flag every far-away row
    ratio = max(n.threshold_ for n in nodes) / min(n.threshold_ for n in nodes)
    assert ratio <= most if relative else ratio > 30
    assert all(n.predict(attacks(20)).all() for n in nodes)


@pytest.mark.parametrize("relative", [True, False])
def test_a_saved_state_scores_alike_and_refuses_a_detector_of_the_other_units(relative):
    X = benign(300)
    fitted = FedCLDetector(make_encoder(), n_references=50, relative=relative, local_weight=0.3).fit(X)
    state = fitted.state_dict()

    loaded = FedCLDetector(make_encoder(), relative=relative).load_state_dict(state)

    np.testing.assert_array_equal(loaded.decision_function(X[:50]), fitted.decision_function(X[:50]))
    assert loaded.local_weight == (0.3 if relative else 0.5)  # a relative state keeps the weight it was fitted with
    with pytest.raises(ValueError, match="saved state scores"):
        FedCLDetector(make_encoder(), relative=not relative).load_state_dict(state)


def test_validation_references_keep_the_out_of_sample_threshold_and_cover_the_validation_rows():
    # Prepare: a node of few rows, and validation rows of a mode its training rows barely hold
    X = benign(60, seed=0)
    X_val = np.vstack([benign(20, seed=3), benign(10, seed=4) * 3.0])

    # Execute
    plain = FedCLDetector(make_encoder(), n_neighbors=3).fit(X, X_val=X_val)
    covered = FedCLDetector(make_encoder(), n_neighbors=3, validation_references=True).fit(X, X_val=X_val)

    # Assert: the threshold and the validation scores are those of references without the validation rows;
    # the references now hold them (a centroid per two rows of either), so they score lower
    assert covered.threshold_ == plain.threshold_
    np.testing.assert_array_equal(covered.validation_scores_, plain.decision_function(X_val))
    assert len(covered.references_) == 45 and len(plain.references_) == 30
    assert covered.decision_function(X_val[20:]).mean() < plain.decision_function(X_val[20:]).mean()
    np.testing.assert_array_equal(covered.decision_scores_, plain.decision_scores_)  # the training rows' own
