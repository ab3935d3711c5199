"""Dynamic weighting on real rows: a noisy node pulls less; honest but different nodes are not set aside."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fedcl.config import FedCLConfig
from fedcl.data import scaled_gaussian_noise
from fedcl.federated import run_federation
from fedcl.pipeline import load_splits, scaled_training_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("aggregation", ["dynamic", "dynamic-guarded"])
def test_a_node_with_noisy_rows_gets_less_weight_than_every_clean_node(fedmse_slice, aggregation):
    # Prepare: three clean real nodes, and a copy of one with noise of 3 std on every feature
    splits = load_splits(FedCLConfig(data=str(fedmse_slice)))
    noisy = replace(splits[0], name="noisy", train=scaled_gaussian_noise(splits[0].train, 3.0, np.random.default_rng(0)))
    rows = {s.name: scaled_training_rows(s) for s in splits + [noisy]}

    # Execute
    result = run_federation(rows, FedCLConfig(rounds=3, aggregation=aggregation))

    # Assert: in every round
    for record in result.history:
        weights = {name: n["weight"] for name, n in record["nodes"].items()}
        distances = {name: n["distance"] for name, n in record["nodes"].items()}
        clean = [name for name in weights if name != "noisy"]
        assert weights["noisy"] < min(weights[name] for name in clean), record["round"]
        assert distances["noisy"] > max(distances[name] for name in clean)


def test_honest_nodes_are_never_set_aside_on_real_rows(fedmse_slice):
    # Prepare: three honest nodes with the default rule
    splits = load_splits(FedCLConfig(data=str(fedmse_slice)))

    # Execute
    result = run_federation({s.name: scaled_training_rows(s) for s in splits}, FedCLConfig(rounds=4))

    # Assert
    for record in result.history:
        assert all(not n["excluded"] and n["reason"] is None and n["weight"] > 0 for n in record["nodes"].values())
