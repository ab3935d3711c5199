"""The PyOD / scikit-learn contract, checked the same way over every baseline detector."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from fedcl.baselines import (
    AutoencoderDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OCSVMDetector,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


DETECTORS = [
    pytest.param(lambda: AutoencoderDetector(epochs=15, batch_size=50, random_state=0), id="autoencoder"),
    pytest.param(lambda: IsolationForestDetector(n_estimators=50, random_state=0), id="iforest"),
    pytest.param(lambda: KNNDetector(), id="knn"),
    pytest.param(lambda: LOFDetector(), id="lof"),
    pytest.param(lambda: OCSVMDetector(max_samples=150, random_state=0), id="ocsvm"),
]


@pytest.fixture(scope="module")
def rows():
    """Lognormal benign rows and attack rows with a shifted log-mean, 115 columns like N-BaIoT."""
    rng = np.random.default_rng(0)
    benign = rng.lognormal(size=(400, 115))
    attack = rng.lognormal(mean=2.0, size=(100, 115))
    return {"train": benign[:200], "val": benign[200:300], "test": benign[300:], "attack": attack}


@pytest.mark.parametrize("make", DETECTORS)
def test_fit_returns_self_and_sets_fitted_attributes(make, rows):
    # Prepare
    det = make()

    # Execute
    out = det.fit(rows["train"], X_val=rows["val"])

    # Assert
    assert out is det
    assert isinstance(det.threshold_, float) and np.isfinite(det.threshold_)
    assert det.decision_scores_.shape == (200,)


@pytest.mark.parametrize("make", DETECTORS)
def test_scores_predictions_and_threshold_agree(make, rows):
    # Prepare
    det = make().fit(rows["train"], X_val=rows["val"])
    x = np.vstack([rows["test"], rows["attack"]])

    # Execute
    scores = det.decision_function(x)
    labels = det.predict(x)

    # Assert
    assert scores.shape == (200,) and np.all(np.isfinite(scores))
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (scores > det.threshold_).astype(int))


@pytest.mark.parametrize("make", DETECTORS)
def test_threshold_is_the_validation_quantile_else_the_training_one(make, rows):
    # Execute
    with_val = make().fit(rows["train"], X_val=rows["val"])
    without_val = make().fit(rows["train"])

    # Assert
    q = 1 - with_val.fpr_target
    assert with_val.threshold_ == pytest.approx(np.quantile(with_val.decision_function(rows["val"]), q))
    assert without_val.threshold_ == pytest.approx(np.quantile(without_val.decision_scores_, q))


@pytest.mark.parametrize("make", DETECTORS)
def test_unfitted_detector_raises_not_fitted(make, rows):
    with pytest.raises(NotFittedError):
        make().decision_function(rows["test"])
    with pytest.raises(NotFittedError):
        make().predict(rows["test"])


@pytest.mark.parametrize("make", DETECTORS)
def test_missing_values_are_accepted(make, rows):
    # Prepare: a tenth of the values missing, in training and in scoring
    rng = np.random.default_rng(1)
    train, test = rows["train"].copy(), rows["test"].copy()
    train[rng.random(train.shape) < 0.1] = np.nan
    test[rng.random(test.shape) < 0.1] = np.nan

    # Execute
    scores = make().fit(train).decision_function(test)

    # Assert
    assert scores.shape == (100,) and np.all(np.isfinite(scores))


@pytest.mark.parametrize("make", DETECTORS)
def test_same_seed_same_scores(make, rows):
    # Execute
    a = make().fit(rows["train"], X_val=rows["val"])
    b = make().fit(rows["train"], X_val=rows["val"])

    # Assert
    np.testing.assert_array_equal(a.decision_function(rows["attack"]), b.decision_function(rows["attack"]))
    assert a.threshold_ == b.threshold_


@pytest.mark.parametrize("make", DETECTORS)
def test_init_only_stores_parameters(make):
    det = make()
    assert clone(det).get_params() == det.get_params()
    assert not [k for k in vars(det) if k.endswith("_")]


@pytest.mark.parametrize("make", DETECTORS)
def test_auroc_floor_on_shifted_attacks(make, rows):
    # Execute
    det = make().fit(rows["train"], X_val=rows["val"])
    scores = det.decision_function(np.vstack([rows["test"], rows["attack"]]))

    # Assert
    assert roc_auc_score(np.r_[np.zeros(100), np.ones(100)], scores) > 0.9


@pytest.mark.parametrize("make", [p for p in DETECTORS if p.id != "knn"])
def test_bad_fpr_target_raises(make, rows):
    with pytest.raises(ValueError, match="fpr_target"):
        make().set_params(fpr_target=1.5).fit(rows["train"])
