"""Secure aggregation wired in: run_federation, the config file, the CLI and the Flower server."""

import dataclasses

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig, load_config, save_config
from fedcl.errors import ConfigError
from fedcl.federated import run_federation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = FedCLConfig(rounds=2, batch_size=16, embedding_dim=4, hidden=8, seed=3)


def nodes(n: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {f"node-{i}": torch.randn(24 + 8 * i, 115, generator=gen) * (i + 1) + i for i in range(n)}


def test_a_round_with_one_node_present_is_skipped_not_aggregated():
    # 2 nodes, each missing a round with probability 0.5: with seed 3, some rounds have one node
    config = dataclasses.replace(CONFIG, rounds=6, aggregation="fedavg", secure_aggregation=True)
    from fedcl.federated.runner import participants

    alone = [r for r in range(1, 7) if participants(2, 0.5, config.seed, r).sum() == 1]
    assert alone  # else the test would not exercise the skip

    result = run_federation(nodes(2), config, dropout=0.5)

    assert [h["round"] for h in result.history] == [r for r in range(1, 7) if r not in alone]


@pytest.mark.parametrize(("rule", "n_nodes"), [("fedavg", 3), ("dynamic", 2)])  # dynamic: 2 nodes, mean = median
def test_masked_federation_equals_the_clear_one(rule, n_nodes):
    clear_config = dataclasses.replace(CONFIG, aggregation=rule)

    clear = run_federation(nodes(n_nodes), clear_config)
    masked = run_federation(nodes(n_nodes), dataclasses.replace(clear_config, secure_aggregation=True))

    for a, b in zip(masked.arrays, clear.arrays):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(masked.reference, clear.reference, rtol=0, atol=1e-6)
    for m, c in zip(masked.history, clear.history):
        for name, node in m["nodes"].items():
            assert node["weight"] == pytest.approx(c["nodes"][name]["weight"], rel=1e-5)
            # dynamic: the d_i each node released; fedavg: the server never learns one
            assert node["distance"] == (None if rule == "fedavg" else pytest.approx(c["nodes"][name]["distance"],
                                                                                    rel=1e-4))


def test_masked_runs_are_deterministic_although_the_masks_are_random():
    config = dataclasses.replace(CONFIG, aggregation="dynamic", secure_aggregation=True)

    first, second = run_federation(nodes(2), config), run_federation(nodes(2), config)

    for a, b in zip(first.arrays, second.arrays):
        np.testing.assert_array_equal(a, b)  # masks cancel exactly in the ring
    assert first.history == second.history


def test_the_option_round_trips_through_a_config_file(tmp_path):
    config = FedCLConfig(aggregation="fedavg", secure_aggregation=True)

    save_config(config, tmp_path / "c.toml")

    assert load_config(tmp_path / "c.toml") == config


def test_cli_refuses_a_robust_rule_with_secure_aggregation_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["train", "--secure-aggregation", "--aggregation", "krum",
                                      "--out", str(tmp_path / "r")])

    assert result.exit_code == 2
    assert "aggregation krum cannot run under secure_aggregation" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_flower_server_refuses_secure_aggregation_with_rounds_of_one_node(tmp_path):
    # Flower runs the masked path (tests/federated/flower/test_secure_flower.py); one node's masked sum is its update.
    from fedcl.federated.flower import run_server

    with pytest.raises(ConfigError, match="needs min_nodes >= 2"):
        run_server(None, FedCLConfig(aggregation="dynamic", secure_aggregation=True), tmp_path / "r", min_nodes=1)
    assert not (tmp_path / "r").exists()
