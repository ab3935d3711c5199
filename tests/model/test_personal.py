"""PersonalDetector: two views of a node's rows in one score, a threshold on benign validation rows."""

import numpy as np
import pytest
import torch

from fedcl.config import FedCLConfig
from fedcl.model import FedCLDetector, PersonalDetector, build_encoder
from fedcl.model._combine import view_weights
from fedcl.pipeline import make_detector

N_FEATURES = 115


def encoder(seed):
    torch.manual_seed(seed)
    return build_encoder("mlp", N_FEATURES, 32, 8)


def rows(n, mean, seed):
    return np.random.default_rng(seed).lognormal(mean=mean, sigma=0.5, size=(n, N_FEATURES))


def personal(combine="mean", seed=0):  # a plain mean keeps the expected scores simple
    return PersonalDetector(FedCLDetector(encoder(seed), n_neighbors=3, n_references=64),
                            FedCLDetector(encoder(seed + 1), n_neighbors=3, n_references=64), combine=combine)


@pytest.fixture(scope="module")
def fitted():
    return personal().fit(rows(300, 2.0, 0), X_val=rows(200, 2.0, 1))


def test_the_score_combines_both_views_in_the_shared_views_units(fitted):
    X = np.vstack([rows(50, 2.0, 2), rows(50, 6.0, 3)])
    val = rows(200, 2.0, 1)
    shared, own = fitted.shared.decision_function, fitted.own.decision_function
    scale = np.quantile(shared(val), 0.9) / np.quantile(own(val), 0.9)  # the own view in shared units

    np.testing.assert_allclose([fitted.scales_["shared"], fitted.scales_["own"]], [1.0, scale])
    np.testing.assert_allclose(fitted.decision_function(X), (shared(X) + own(X) * scale) / 2)
    alarm_from_either = personal("max").fit(rows(300, 2.0, 0), X_val=val)
    np.testing.assert_allclose(alarm_from_either.decision_function(X), np.maximum(shared(X), own(X) * scale))


def test_the_weighted_mean_leans_on_the_view_with_the_lighter_benign_tail():
    X, val = rows(300, 2.0, 0), rows(200, 2.0, 1)
    detector = personal("weighted").fit(X, X_val=val)
    shared, own = detector.shared.decision_function(val), detector.own.decision_function(val)
    tail = {v: np.quantile(s, 0.99) / np.quantile(s, 0.5) - 1 for v, s in (("shared", shared), ("own", own))}
    expected = (1 / tail["shared"]) / (1 / tail["shared"] + 1 / tail["own"])

    np.testing.assert_allclose([detector.weights_["shared"], detector.weights_["own"]], [expected, 1 - expected])
    probe = rows(64, 3.0, 5)
    w = detector.weights_["shared"]
    # bit for bit the two-view formula every saved run and bundle was scored with
    np.testing.assert_array_equal(detector.decision_function(probe),
                                  w * detector.shared.decision_function(probe)
                                  + (1 - w) * (detector.own.decision_function(probe) * detector.scales_["own"]))


def test_view_weights_follow_the_tails():
    light, heavy = np.r_[np.ones(98), 1.2, 1.2], np.r_[np.ones(98), 5.0, 5.0]  # q99/q50 − 1 ≈ 0.2 and 4

    assert view_weights({"shared": light, "own": heavy})["shared"] > 0.9
    assert view_weights({"shared": heavy, "own": light})["shared"] < 0.1
    assert view_weights({"shared": light, "own": light * 7})["shared"] == pytest.approx(0.5)  # units do not matter
    three = view_weights({"shared": light, "own": light * 7, "tuned": light * 3}, own_odds=2)
    assert three == pytest.approx({"shared": 0.25, "own": 0.5, "tuned": 0.25})


def test_the_threshold_is_set_on_the_combined_validation_scores(fitted):
    val = rows(200, 2.0, 1)

    assert np.mean(fitted.decision_function(val) > fitted.threshold_) <= 0.01
    assert np.mean(fitted.predict(rows(100, 6.0, 4))) == 1.0  # far-off rows are all anomalies


def test_a_saved_detector_scores_exactly_as_the_fitted_one(fitted):
    X = rows(64, 3.0, 5)
    # The shared encoder comes with the run's model; the own encoder's weights come with the state.
    restored = PersonalDetector(FedCLDetector(fitted.encoder, n_neighbors=3, n_references=64),
                                FedCLDetector(encoder(7), n_neighbors=3, n_references=64),
                                ).load_state_dict(fitted.state_dict())

    np.testing.assert_array_equal(restored.decision_function(X), fitted.decision_function(X))
    assert restored.threshold_ == fitted.threshold_
    # Saved before three views (no shared_scale, no own_weight): the same scores; before weighting, 0.5 each.
    two_views = {k: v for k, v in fitted.state_dict().items() if k not in ("own_weight", "shared_scale")}
    np.testing.assert_array_equal(restored.load_state_dict(two_views).decision_function(X), fitted.decision_function(X))
    before_weighting = {k: v for k, v in two_views.items() if k != "shared_weight"}
    assert restored.load_state_dict(before_weighting).weights_ == {"shared": 0.5, "own": 0.5}
    assert restored.scales_ == {"shared": 1.0, "own": fitted.scales_["own"]}
    assert all(isinstance(v, torch.Tensor) for v in fitted.state_dict().values())


def test_tuned_combines_three_views_in_the_own_views_units_leaning_on_the_own_view():
    X, val, probe = rows(300, 2.0, 0), rows(200, 2.0, 1), rows(64, 3.0, 5)
    views = [FedCLDetector(encoder(seed), n_neighbors=3, n_references=64) for seed in (0, 1, 2)]
    detector = PersonalDetector(*views[:2], tuned=views[2], combine="tuned").fit(X, X_val=val)
    validation = {name: view.decision_function(val) for name, view in zip(("shared", "own", "tuned"), views)}
    weights = view_weights(validation, own_odds=2)
    scales = {name: np.quantile(validation["own"], 0.9) / np.quantile(s, 0.9) for name, s in validation.items()}

    np.testing.assert_allclose([detector.scales_[v] for v in scales], list(scales.values()))
    np.testing.assert_allclose(detector.decision_function(probe),
                               sum(weights[v] * scales[v] * view.decision_function(probe)
                                   for v, view in zip(scales, views)))
    assert np.mean(detector.decision_function(val) > detector.threshold_) <= 0.01
    with pytest.raises(ValueError, match="fine-tuned view"):
        PersonalDetector(*views[:2], combine="tuned")
    restored = PersonalDetector(FedCLDetector(views[0].encoder, n_neighbors=3, n_references=64),
                                FedCLDetector(encoder(9), n_neighbors=3, n_references=64),
                                tuned=FedCLDetector(encoder(8), n_neighbors=3, n_references=64), combine="tuned")
    np.testing.assert_array_equal(restored.load_state_dict(detector.state_dict()).decision_function(probe),
                                  detector.decision_function(probe))
    two_views = PersonalDetector(FedCLDetector(views[0].encoder, n_neighbors=3, n_references=64),
                                 FedCLDetector(encoder(9), n_neighbors=3, n_references=64))
    with pytest.raises(ValueError, match="saved detector has the views own, shared, tuned"):
        two_views.load_state_dict(detector.state_dict())  # a config that no longer matches the run


def test_config_picks_the_node_detector():
    shared, own = encoder(0), encoder(1)

    assert isinstance(make_detector(shared, FedCLConfig(personalisation="off")), FedCLDetector)
    detector = make_detector(shared, FedCLConfig(personalisation="max"), own)
    assert isinstance(detector, PersonalDetector) and detector.combine == "max"
    assert detector.encoder is shared and detector.own.encoder is own
    with pytest.raises(ValueError, match="own encoder"):
        make_detector(shared, FedCLConfig())
    tuned = make_detector(shared, FedCLConfig(), own, encoder(2))  # the default: three views
    assert list(tuned.views) == ["shared", "own", "tuned"] and tuned.tuned.encoder is not shared
    for config, extra in ((FedCLConfig(), ()), (FedCLConfig(personalisation="weighted"), (encoder(2),))):
        with pytest.raises(ValueError, match="fine-tuned encoder"):
            make_detector(shared, config, own, *extra)
    with pytest.raises(ValueError, match="unknown combine"):
        PersonalDetector(FedCLDetector(shared), FedCLDetector(own), combine="min")


def test_a_nodes_own_encoder_depends_only_on_its_rows_and_the_recipe(fedmse_slice, one_torch_thread):
    from dataclasses import replace

    from fedcl.federated.params import get_arrays
    from fedcl.pipeline import load_splits, own_encoder, training

    config = FedCLConfig(data=str(fedmse_slice), rounds=1)
    node = load_splits(config)[0]
    first = get_arrays(own_encoder(node, config))

    training._OWN_ARRAYS.clear()  # retrained: one node, so the server rule does not matter; the encoder never
    # leaves it (no DP); one epoch a round, whatever min_rows_per_round asks of federated training
    retrained = get_arrays(own_encoder(node, config.updated(aggregation="krum", dp_epsilon=3.0, min_rows_per_round=5000)))
    cached = get_arrays(own_encoder(node, config))
    assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(first, retrained, cached))
    fewer_rows = get_arrays(own_encoder(replace(node, train=node.train[:-20]), config))
    assert not all(np.array_equal(a, b) for a, b in zip(first, fewer_rows))


def test_with_validation_references_every_view_calibrates_on_its_out_of_sample_scores():
    X, X_val, test = rows(300, 2.0, 0), rows(200, 2.0, 1), rows(50, 2.5, 6)
    plain = personal("weighted").fit(X, X_val=X_val)
    covered = PersonalDetector(*(FedCLDetector(encoder(s), n_neighbors=3, n_references=64, validation_references=True)
                                 for s in (0, 1)), combine="weighted").fit(X, X_val=X_val)

    assert covered.threshold_ == plain.threshold_
    assert covered.scales_ == plain.scales_ and covered.weights_ == plain.weights_
    assert not np.array_equal(covered.decision_function(test), plain.decision_function(test))  # other references
