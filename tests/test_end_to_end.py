"""Train, evaluate and report on a small slice of real N-BaIoT rows."""

from __future__ import annotations

import json

import numpy as np
import torch

from fedcl.config import FedCLConfig
from fedcl.eval import METRIC_KEYS
from fedcl.pipeline import evaluate, fit_detectors, load_detectors, load_splits, train


def test_federated_detector_far_above_chance_on_real_rows(fedmse_slice, tmp_path):
    # Prepare
    config = FedCLConfig(data=str(fedmse_slice), rounds=4, seed=0)

    # Execute
    run = train(config, tmp_path / "run")
    summary = evaluate(run)

    # Assert: guard on, no attack row seen before testing, yet attacks stand out clearly
    assert summary["pooled"]["auroc"] > 0.95
    assert all(m["auroc"] > 0.9 for m in summary["nodes"].values())
    assert summary["counts"] == {"benign_test": 300, "attack": 600}
    saved = json.loads((run / "metrics.json").read_text())
    assert set(saved["pooled"]) == set(METRIC_KEYS)
    assert set(saved["nodes"]) == {"Client-1", "Client-2", "Client-3"}
    assert saved["rows"]["Client-1"] == {"training": 320, "validation": 80, "benign_test": 100, "attack": 200}
    report = (run / "report.md").read_text()
    assert report.count("| Client-") == 6  # per node: its metrics, its rows
    # a 99 % quantile of 80 validation rows: every node's threshold is flagged as coarse
    assert [line.split(":")[0] for line in saved["few_rows"]] == ["Client-1", "Client-2", "Client-3"]
    assert "- Client-1: its threshold comes from 80 benign validation rows: expect an FPR of about 0.022" in report
    assert (run / "roc.png").stat().st_size > 10_000
    assert len((run / "history.jsonl").read_text().splitlines()) == 4


def test_saved_run_reloads_weights_only_with_identical_scores(fedmse_slice, tmp_path):
    # Prepare
    run = train(FedCLConfig(data=str(fedmse_slice), rounds=2, seed=1), tmp_path / "run")
    rows = np.loadtxt(fedmse_slice / "Client-2" / "abnormal" / "data.csv", delimiter=",")[:50]

    # Execute
    first = load_detectors(run)
    second = load_detectors(run)

    # Assert
    torch.load(run / "model.pt", weights_only=True)  # raises if anything but tensors/primitives
    np.testing.assert_array_equal(first["Client-2"].decision_function(rows),
                                  second["Client-2"].decision_function(rows))


def test_a_run_whose_nodes_accept_each_others_benign_rows_reloads_them_so(fedmse_slice, tmp_path):
    # Prepare
    config = FedCLConfig(data=str(fedmse_slice), rounds=2, seed=1, acceptance_margin=1.0)
    others = np.loadtxt(fedmse_slice / "Client-2" / "test_normal" / "data.csv", delimiter=",")

    # Execute
    run = train(config, tmp_path / "run")
    summary = evaluate(run)
    detectors = load_detectors(run)

    # Assert: each node's peers are the other two nodes' federation views, and a node's scores of another
    # node's benign rows are its own detector's or lower (accepted), as the report says
    assert {name: set(d.peers) for name, d in detectors.items()} == {
        "Client-1": {"Client-2", "Client-3"}, "Client-2": {"Client-1", "Client-3"}, "Client-3": {"Client-1", "Client-2"}}
    accepted, own = detectors["Client-1"].decision_function(others), detectors["Client-1"].base.decision_function(others)
    assert (accepted <= own).all() and (accepted < own).any()
    assert summary["pooled"]["auroc"] > 0.9
    assert "acceptance_margin" in (run / "report.md").read_text()


def test_a_node_joining_later_accepts_what_the_trained_nodes_find_benign(fedmse_slice):
    config = FedCLConfig(data=str(fedmse_slice), rounds=2, acceptance_margin=0.7)

    detectors, _ = fit_detectors(load_splits(config), config, trainers={"Client-1", "Client-2"})

    assert list(detectors) == ["Client-3"]
    assert set(detectors["Client-3"].peers) == {"Client-1", "Client-2"}


def test_training_is_deterministic_for_a_seed(fedmse_slice, tmp_path):
    # Execute
    a = evaluate(train(FedCLConfig(data=str(fedmse_slice), rounds=2, seed=3), tmp_path / "a"))
    b = evaluate(train(FedCLConfig(data=str(fedmse_slice), rounds=2, seed=3), tmp_path / "b"))

    # Assert
    assert a == b


def test_nodes_without_attacks_or_benign_test_are_trained_and_reported(fedmse_slice, tmp_path):
    # Prepare: Client-2 saw no attack, Client-3 has no test_normal folder
    import shutil

    data = tmp_path / "data"
    shutil.copytree(fedmse_slice, data)
    shutil.rmtree(data / "Client-2" / "abnormal")
    shutil.rmtree(data / "Client-3" / "test_normal")

    # Execute
    summary = evaluate(train(FedCLConfig(data=str(data), rounds=2), tmp_path / "run"))

    # Assert
    no_attack = summary["nodes"]["Client-2"]
    assert no_attack["auroc"] is None and no_attack["recall"] is None and no_attack["fpr_at_tpr99"] is None
    assert no_attack["fpr"] is not None and no_attack["accuracy"] is not None
    assert summary["nodes"]["Client-3"]["auroc"] > 0.9  # its benign test rows were carved from normal/
    assert summary["counts"]["attack"] == 400


def test_few_rows_names_coarse_thresholds_and_small_test_sets():
    from fedcl.eval.metrics import few_rows

    rows = {"big": {"training": 3000, "validation": 1000, "benign_test": 1000, "attack": 50},
            "tiny": {"training": 24, "validation": 8, "benign_test": 8, "attack": 500},
            "untested": {"training": 3000, "validation": 1000, "benign_test": 0, "attack": 50}}

    lines = few_rows(rows, fpr_target=0.01)

    assert lines == ["tiny: its threshold comes from 8 benign validation rows: expect an FPR of about 0.119 at it, "
                     "not 0.01; 8 benign test rows: each moves its FPR by 0.125"]
    assert few_rows(rows, fpr_target=0.2) == ["tiny: 8 benign test rows: each moves its FPR by 0.125"]


def test_expected_fpr_is_what_a_quantile_of_few_rows_lets_through():
    from fedcl.eval.metrics import expected_fpr

    rng = np.random.default_rng(0)
    for n in (8, 80, 400):
        validation, benign = rng.random((20_000, n)), rng.random(20_000)  # uniform scores: FPR = 1 − threshold
        simulated = np.mean(benign > np.quantile(validation, 0.99, axis=1))
        assert abs(simulated - expected_fpr(n, 0.01)) < 0.003, n
