"""KNNDetector: PyOD contract and a ROC-AUC floor on synthetic data."""

import numpy as np
from sklearn.metrics import roc_auc_score

from fedcl.baselines import KNNDetector


def test_knn_detector_contract_and_auroc_floor():
    # Prepare
    rng = np.random.default_rng(0)
    benign = rng.lognormal(size=(300, 115))
    attack = rng.lognormal(mean=2.0, size=(100, 115))

    # Execute
    det = KNNDetector(n_neighbors=5).fit(benign[:200], X_val=benign[200:250])
    scores = det.decision_function(np.vstack([benign[250:], attack]))

    # Assert
    assert det.fit(benign[:200]) is det and det.decision_scores_.shape == (200,)
    assert det.decision_scores_.min() > 0  # leave-one-out: a row is not its own neighbour
    assert scores.shape == (150,)
    assert roc_auc_score(np.r_[np.zeros(50), np.ones(100)], scores) > 0.95
    assert set(np.unique(det.predict(attack))) <= {0, 1}
