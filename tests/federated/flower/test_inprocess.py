"""The Flower apps, driven in-process, train exactly what the plain in-process runner trains."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fedcl.config import FedCLConfig
from fedcl.federated import run_federation
from fedcl.federated.flower import run_inprocess
from fedcl.federated.flower.server import CHECKPOINT_FILE
from fedcl.pipeline import evaluate, load_splits, scaled_training_rows
from fedcl.rundir import HISTORY_FILE


def node_configs(root, names):
    # One data folder per node, as on real SuperNodes.
    return [{"data-path": str(root / name), "partition-id": i} for i, name in enumerate(names)]


@pytest.mark.parametrize("aggregation", ["dynamic-guarded", "dynamic", "multi-krum"])  # the default rule first
def test_flower_path_equals_in_process_runner(fedmse_slice, tmp_path, aggregation):
    # Prepare
    config = FedCLConfig(data=str(fedmse_slice), rounds=3, seed=5, aggregation=aggregation)
    splits = load_splits(config)

    # Execute
    plain = run_federation({s.name: scaled_training_rows(s) for s in splits}, config)
    flower = run_inprocess(config, node_configs(fedmse_slice, [s.name for s in splits]), tmp_path / "run")

    # Assert
    saved = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    assert int(saved["round"]) == 3
    for a, b in zip(plain.arrays, saved["arrays"]):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(plain.reference, flower.reference, rtol=0, atol=1e-6)
    assert [h["loss"] for h in plain.history] == pytest.approx([h["loss"] for h in flower.history])
    for p, f in zip(plain.history, flower.history):  # same nodes, same names, same order, same weights
        assert list(f["nodes"]) == list(p["nodes"])
        assert [n["weight"] for n in f["nodes"].values()] == pytest.approx([n["weight"] for n in p["nodes"].values()])


def test_history_names_nodes_like_the_in_process_runner_whatever_order_they_join(fedmse_slice, tmp_path):
    # Prepare: the nodes join in reverse order; their partition ids still follow the data folder
    config = FedCLConfig(data=str(fedmse_slice), rounds=2, seed=3)
    splits = load_splits(config)
    nodes = node_configs(fedmse_slice, [s.name for s in splits])[::-1]

    # Execute
    plain = run_federation({s.name: scaled_training_rows(s) for s in splits}, config)
    run_inprocess(config, nodes, tmp_path / "run")

    # Assert: history.jsonl names the nodes as the in-process runner does, in its order
    saved = [json.loads(line) for line in (tmp_path / "run" / HISTORY_FILE).read_text().splitlines()]
    assert [list(h["nodes"]) for h in saved] == [list(h["nodes"]) for h in plain.history]
    assert list(saved[0]["nodes"]) == ["Client-1", "Client-2", "Client-3"]
    assert [h["loss"] for h in saved] == pytest.approx([h["loss"] for h in plain.history], abs=1e-6)


def test_resume_continues_from_the_last_checkpoint(fedmse_slice, tmp_path):
    # Prepare: a 3-round run, and a run stopped after 2 rounds then resumed to 3
    names = ["Client-1", "Client-2", "Client-3"]
    nodes = node_configs(fedmse_slice, names)
    full = run_inprocess(FedCLConfig(rounds=3), nodes, tmp_path / "full")
    (tmp_path / "resumed").mkdir()
    for name in ("metrics.json", "report.md"):  # an earlier `fedcl run` in the folder: a new run clears them
        (tmp_path / "resumed" / name).write_text("an earlier run's\n")
    run_inprocess(FedCLConfig(rounds=2), nodes, tmp_path / "resumed")
    left = [name for name in ("metrics.json", "report.md") if (tmp_path / "resumed" / name).exists()]

    # Execute
    from fedcl.federated.flower import InProcessGrid, run_server
    from fedcl.federated.flower.client_app import app

    resumed = run_server(InProcessGrid(app, nodes), FedCLConfig(rounds=3), tmp_path / "resumed",
                         min_nodes=3, resume=True)

    # Assert: only round 3 ran, and it ended where the uninterrupted run ended
    assert left == []
    assert [h["round"] for h in resumed.history] == [3]
    a = torch.load(tmp_path / "full" / CHECKPOINT_FILE, weights_only=True)
    b = torch.load(tmp_path / "resumed" / CHECKPOINT_FILE, weights_only=True)
    for x, y in zip(a["arrays"], b["arrays"]):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    assert len((tmp_path / "resumed" / "history.jsonl").read_text().splitlines()) == 3
    np.testing.assert_allclose(full.reference, resumed.reference, atol=1e-6)


def test_flower_run_directory_evaluates_with_node_side_detectors(fedmse_slice, tmp_path):
    # Prepare
    run_inprocess(FedCLConfig(rounds=3), node_configs(fedmse_slice, ["Client-1", "Client-2", "Client-3"]),
                  tmp_path / "run")

    # Execute: detectors are fitted from each node's own rows at evaluation
    summary = evaluate(tmp_path / "run", data=str(fedmse_slice))

    # Assert
    assert summary["pooled"]["auroc"] > 0.95


def test_another_flwr_version_fails_loudly_before_any_message(monkeypatch, fedmse_slice):
    # Prepare: the private metadata the in-process path sets may differ in any other release
    import importlib.metadata

    from fedcl.federated.flower import InProcessGrid
    from fedcl.federated.flower.client_app import app

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.43.0" if name == "flwr" else real(name))

    # Execute / Assert
    with pytest.raises(RuntimeError, match=r"flwr 1\.42\.0 does; flwr 1\.43\.0 is installed"):
        InProcessGrid(app, [{"data-path": str(fedmse_slice / "Client-1"), "partition-id": 1}])
