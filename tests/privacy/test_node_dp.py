"""Node-level differential privacy (DP-FedAvg): clipping, calibration, the server step, the runner, the CLI
and the experiment's quick form."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig, load_config, save_config
from fedcl.errors import ConfigError
from fedcl.federated import run_federation
from fedcl.federated.flower import InProcessGrid
from fedcl.federated.flower._records import config_record, read_config_record
from fedcl.privacy.dp import spent_epsilon
from fedcl.privacy.node_dp import NodeLevelDP, clipped, noise_multiplier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = FedCLConfig(rounds=4, batch_size=16, embedding_dim=4, hidden=8, seed=3, aggregation="fedavg",
                     dp_level="node", dp_epsilon=4.0, dp_sample_rate=0.5)


def norm(update):
    return math.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in update))


def test_clipping_bounds_the_whole_update_and_leaves_a_small_one_alone():
    big = [np.full((3, 4), 2.0, np.float32), np.full(5, -1.0, np.float32)]
    small = [a / 1000 for a in big]

    assert norm(clipped(big, 0.5)) == pytest.approx(0.5, rel=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(clipped(small, 0.5), small))
    # the direction is kept
    assert np.allclose(clipped(big, 0.5)[0] / clipped(big, 0.5)[1][0], big[0] / big[1][0])


def test_the_noise_is_calibrated_to_the_target_and_grows_as_epsilon_shrinks():
    z4, z1 = noise_multiplier(4.0, 1e-5, 0.5, 4), noise_multiplier(1.0, 1e-5, 0.5, 4)  # z4: CONFIG's, cached

    assert 0.99 * 4 <= spent_epsilon([(z4, 0.5, 4)], 1e-5) <= 4
    assert 0.99 * 1 <= spent_epsilon([(z1, 0.5, 4)], 1e-5) <= 1
    assert z1 > z4
    assert spent_epsilon([(z1, 0.1, 4)], 1e-5) < 1  # sampling fewer nodes amplifies privacy


def server(z: float, nodes: int = 4, q: float = 0.5, clip: float = 0.5) -> NodeLevelDP:
    return NodeLevelDP(nodes, q, clip, z, 1e-5, torch.Generator().manual_seed(0))


def test_without_noise_the_step_is_the_mean_of_the_clipped_updates_over_the_expected_count():
    theta = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    updates = [[np.full((2, 3), 1.0, np.float32), np.zeros(4, np.float32)],
               [np.full((2, 3), 0.01, np.float32), np.full(4, 0.01, np.float32)]]

    step = server(0.0).step(theta, updates)

    expected = [t + (c1 + c2) / 2.0 for t, c1, c2 in zip(theta, clipped(updates[0], 0.5), clipped(updates[1], 0.5))]
    assert all(np.allclose(a, b) for a, b in zip(step.arrays, expected))
    assert step.reference is None and np.allclose(step.weights, 1 / 2.0)


def test_one_node_moves_the_noiseless_step_by_at_most_the_clip_over_the_expected_count():
    theta = [np.zeros(50, np.float32)]
    honest = [[np.random.default_rng(i).normal(size=50).astype(np.float32)] for i in range(3)]
    outlier = [np.full(50, 1e6, np.float32)]

    with_it, without = server(0.0).step(theta, honest + [outlier]), server(0.0).step(theta, honest)

    assert norm([with_it.arrays[0] - without.arrays[0]]) <= 0.5 / 2.0 + 1e-6


def test_a_round_nobody_answered_still_adds_noise_of_the_calibrated_std():
    theta = [np.zeros(100_000, np.float32)]

    step = server(1.0).step(theta, [])  # z·S/(q·N) = 1 · 0.5 / (0.5 · 4)

    assert np.std(step.arrays[0]) == pytest.approx(0.25, rel=0.02) and step.weights.size == 0


def test_a_non_finite_update_counts_as_zero_and_theta_stays_finite():
    theta = [np.zeros(10, np.float32)]
    bad = [[np.full(10, np.nan, np.float32)], [np.full(10, np.inf, np.float32)]]

    assert all(np.array_equal(clipped(u, 0.5)[0], np.zeros(10)) for u in bad)
    assert np.all(np.isfinite(server(0.0).step(theta, bad).arrays[0]))


def rows(n: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {f"node-{i}": torch.randn(40, 115, generator=gen) + i for i in range(n)}


def test_the_runner_samples_nodes_spends_at_most_epsilon_and_records_nothing_else():
    asked = []

    result = run_federation(rows(8), CONFIG, on_updates=lambda r, theta, names, updates: asked.append(len(names)))

    spent = [h["epsilon"] for h in result.history]
    assert spent == sorted(spent) and 0.99 * 4 <= spent[-1] <= 4
    assert min(asked) < 8  # Poisson sampling at q = 0.5 over 4 rounds of 8 nodes (P(all) = 2^-32)
    # who was sampled stays secret, and nodes release no statistics: no reference, no names, no losses
    assert result.reference is None and all(set(h) == {"round", "epsilon"} for h in result.history)


def test_the_noise_and_the_sample_are_secret():
    first, second = run_federation(rows(4), CONFIG), run_federation(rows(4), CONFIG)
    samples = [np.concatenate([NodeLevelDP.plan(CONFIG, 8).sampled() for _ in range(8)]) for _ in range(2)]

    assert any(not np.array_equal(a, b) for a, b in zip(first.arrays, second.arrays))
    assert not np.array_equal(*samples)  # same seed, other draws (P(equal) = 2^-64)


def test_node_level_runs_with_compression_and_dropout_and_refuses_a_single_node():
    result = run_federation(rows(4), CONFIG.updated(compression_bits=4), dropout=0.3)

    assert all(np.all(np.isfinite(a)) for a in result.arrays) and len(result.history) == CONFIG.rounds
    with pytest.raises(ValueError, match="at least 2 nodes"):
        run_federation(rows(1), CONFIG)


def test_a_one_node_run_is_refused(fedmse_slice):
    from fedcl.pipeline import check_trainable, load_splits

    splits = load_splits(CONFIG.updated(data=str(fedmse_slice)))

    with pytest.raises(ConfigError, match="at least 2 nodes"):
        check_trainable(splits[:1], CONFIG)


class WatchedGrid(InProcessGrid):
    """The in-process grid, keeping what each round asked of whom and what the nodes replied."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked, self.replies = [], []

    def push_messages(self, messages):
        messages = list(messages)
        self.asked.append(len(messages))
        return super().push_messages(messages)

    def pull_messages(self, message_ids):
        replies = list(super().pull_messages(message_ids))
        self.replies += replies
        return replies


def flower_nodes(root):
    return [{"data-path": str(root / f"Client-{i}"), "partition-id": i} for i in (1, 2, 3)]


def test_on_flower_the_server_samples_noises_and_records_only_epsilon_and_nodes_send_theta_alone(fedmse_slice,
                                                                                                  tmp_path):
    from fedcl.federated.flower import run_server
    from fedcl.federated.flower.client_app import app as client_app
    from fedcl.federated.flower.server import load_checkpoint

    grid = WatchedGrid(client_app, flower_nodes(fedmse_slice))
    config = CONFIG.updated(rounds=6, dp_sample_rate=0.5)

    strategy = run_server(grid, config, tmp_path / "r", min_nodes=3, evaluate=False)

    spent = [h["epsilon"] for h in strategy.history]
    assert len(spent) == 6 and spent == sorted(spent) and 0.99 * 4 <= spent[-1] <= 4
    # Poisson sampling at q = 0.5: some round asks fewer than all 3 nodes (an empty round pushes nothing);
    # P(all 3 in all 6 rounds) = 2^-18
    assert len(grid.asked) < 6 or min(grid.asked) < 3
    assert all(set(h) == {"round", "epsilon"} for h in strategy.history)
    history = [json.loads(line) for line in (tmp_path / "r" / "history.jsonl").read_text().splitlines()]
    assert history == strategy.history
    # the replies hold θ_i and who sent it: no n_i, μ_i, σ_i, d_i or losses
    assert grid.replies and all(set(r.content.keys()) == {"arrays", "node"} for r in grid.replies)
    saved = load_checkpoint(tmp_path / "r")
    assert strategy.reference is None and saved.reference is None and saved.fleet_size == 3


def test_on_flower_a_round_nobody_was_sampled_for_still_adds_noise(fedmse_slice, tmp_path, monkeypatch):
    from fedcl.federated.flower import run_server
    from fedcl.federated.flower.client_app import app as client_app
    from fedcl.federated.params import get_arrays
    from fedcl.model import initial_encoder

    monkeypatch.setattr(NodeLevelDP, "sampled", lambda self, n=None: np.zeros(n, bool))
    grid = WatchedGrid(client_app, flower_nodes(fedmse_slice))

    config = CONFIG.updated(rounds=1, hidden=128, embedding_dim=32)  # 35 k coordinates: a tight std (nobody trains)

    run_server(grid, config, tmp_path / "r", min_nodes=3, evaluate=False)

    saved = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    moved = np.concatenate([(t.numpy() - a).ravel() for t, a in zip(saved["arrays"],
                                                                    get_arrays(initial_encoder(config, 115)))])
    z = noise_multiplier(4.0, 1e-5, 0.5, 1)
    assert grid.asked == [] and np.std(moved) == pytest.approx(z * 0.5 / (0.5 * 3), rel=0.03)  # 7.9 standard errors


class FailingGrid(WatchedGrid):
    """Stops the server (as a crash would) when it pushes a given round's messages."""

    def __init__(self, *args, fail_at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_at = fail_at

    def push_messages(self, messages):
        messages = list(messages)
        if len(self.asked) + 1 == self.fail_at:
            raise RuntimeError("the server machine went down")
        return super().push_messages(messages)


def test_on_flower_a_resumed_run_keeps_its_plan_and_n_and_cannot_add_rounds(fedmse_slice, tmp_path):
    from fedcl.federated.flower import run_server
    from fedcl.federated.flower.client_app import app as client_app

    config = CONFIG.updated(rounds=3, dp_sample_rate=1.0, compression_bits=4)  # every round asks every node
    with pytest.raises(RuntimeError, match="went down"):
        run_server(FailingGrid(client_app, flower_nodes(fedmse_slice), fail_at=3), config, tmp_path / "r",
                   min_nodes=3, evaluate=False)
    with pytest.raises(ConfigError, match="rounds 3 -> 5"):  # the noise was calibrated for 3 rounds
        run_server(WatchedGrid(client_app, flower_nodes(fedmse_slice)), config.updated(rounds=5), tmp_path / "r",
                   min_nodes=2, resume=True, evaluate=False)

    # Two of the three nodes are back: N stays 3, so the denominator q·N does not shrink
    resumed = run_server(WatchedGrid(client_app, flower_nodes(fedmse_slice)[:2]), config, tmp_path / "r",
                         min_nodes=2, resume=True, evaluate=False)

    history = [json.loads(line) for line in (tmp_path / "r" / "history.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [1, 2, 3] and resumed.fleet_size == 3
    assert 0.99 * 4 <= history[-1]["epsilon"] <= 4  # the whole run's plan, spent once
    assert all(np.all(np.isfinite(a.numpy())) for a in torch.load(tmp_path / "r" / "checkpoint.pt")["arrays"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sample_fraction": 0.5}, "the server samples nodes itself"),
    ({"min_nodes": 1}, "dp_level node needs min_nodes >= 2"),
])
def test_the_flower_server_refuses_settings_node_level_cannot_keep(kwargs, message, tmp_path):
    from fedcl.federated.flower import run_server

    with pytest.raises(ConfigError, match=message):
        run_server(None, CONFIG, tmp_path / "r", **{"min_nodes": 2, **kwargs})
    assert not (tmp_path / "r").exists()


def test_flower_simulate_runs_node_level_and_reports_it(fedmse_slice, tmp_path):
    result = CliRunner().invoke(app, ["flower", "simulate", "--data", str(fedmse_slice), "--out", str(tmp_path / "r"),
                                      "--rounds", "2", "--aggregation", "fedavg", "--dp-level", "node",
                                      "--dp-epsilon", "5", "--dp-sample-rate", "0.8"])

    assert result.exit_code == 0, result.output
    privacy = json.loads((tmp_path / "r" / "metrics.json").read_text())["privacy"]
    assert privacy["level"] == "node" and 0.99 * 5 <= privacy["epsilon"] <= 5 and "rate 0.8" in privacy["mechanism"]
    assert "fleet.md" not in result.output  # no federated evaluation under DP


@pytest.mark.parametrize(("overrides", "message"), [
    ({"dp_level": "row"}, "dp_level must be one of record, node"),
    ({"aggregation": "dynamic-guarded"}, "set aggregation fedavg"),
    ({"aggregation": "fedavg", "secure_aggregation": True}, "cannot combine with secure_aggregation"),
    ({"dp_sample_rate": 0.0}, "dp_sample_rate must be in (0, 1]"),
    ({"dp_update_clip": math.inf}, "dp_update_clip must be positive and finite"),
    ({"dp_level": "record", "dp_sample_rate": 0.5}, "dp_sample_rate samples nodes under dp_level node"),
])
def test_bad_node_level_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CONFIG.updated(**overrides)


def test_the_settings_round_trip_through_a_config_file_and_a_flower_config_record(tmp_path):
    save_config(CONFIG, tmp_path / "c.toml")

    assert load_config(tmp_path / "c.toml") == CONFIG
    assert read_config_record(config_record(CONFIG, None))[0] == CONFIG.updated(data="")


def test_run_reports_node_level_privacy_in_metrics(fedmse_slice, tmp_path):
    result = CliRunner().invoke(app, ["run", "--data", str(fedmse_slice), "--out", str(tmp_path / "r"),
                                      "--rounds", "2", "--embedding-dim", "8", "--personalisation", "off",
                                      "--aggregation", "fedavg", "--dp-level", "node", "--dp-epsilon", "5"])

    assert result.exit_code == 0, result.output
    privacy = json.loads((tmp_path / "r" / "metrics.json").read_text())["privacy"]
    assert 0.99 * 5 <= privacy["epsilon"] <= 5 and "node level" in privacy["unit"]
    assert "DP-FedAvg" in privacy["mechanism"] and privacy["level"] == "node"
    assert "node-level differential privacy" in (tmp_path / "r" / "report.md").read_text()


def test_cli_refuses_node_level_with_the_default_rule_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["run", "--dp-level", "node", "--dp-epsilon", "2", "--out", str(tmp_path / "r")])

    assert result.exit_code == 2 and "set aggregation fedavg" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_quick_node_level_curve_writes_resumable_results(fedmse_slice, tmp_path):
    args = ["experiment", "privacy", "--level", "node", "--quick", "--seeds", "1", "--data", str(fedmse_slice),
            "--nodes", "3", "--out", str(tmp_path / "p")]

    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)

    assert first.exit_code == 0, first.output
    results = pd.read_csv(tmp_path / "p" / "node-level.csv")
    assert sorted(results["epsilon"]) == [1.0, math.inf] and set(results["nodes"]) == {3}
    assert results["auroc"].between(0, 1).all() and (results.loc[results["epsilon"] == 1.0, "noise_multiplier"] > 0).all()
    assert second.exit_code == 0 and len(pd.read_csv(tmp_path / "p" / "node-level.csv")) == 2
    assert (tmp_path / "p" / "node-level.md").is_file() and (tmp_path / "p" / "node-level.png").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--nodes", "10"], "--nodes goes with --level node"),
    (["--level", "node", "--cell", "natural"], "--cell goes with --level record"),
    (["--level", "node", "--nodes", ""], "node counts of at least 2"),
    (["--level", "node", "--nodes", "10,1"], "node counts of at least 2"),
    (["--level", "nodes"], "--level must be record or node"),
])
def test_bad_node_level_experiment_options_fail_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["experiment", "privacy", *args, "--out", str(tmp_path / "p")])

    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
