"""Differential privacy wired in: run_federation, what a node sends, the config file, the CLI, metrics.json
and the report, and `fedcl flower simulate` (the Flower apps, driven in-process)."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig, load_config, save_config
from fedcl.federated import run_federation
from fedcl.federated.flower._records import config_record, read_config_record
from fedcl.privacy import dp
from fedcl.rundir import HISTORY_FILE

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:Full backward hook is firing")]

CONFIG = FedCLConfig(rounds=2, batch_size=16, embedding_dim=4, hidden=8, seed=3, dp_epsilon=4.0)


def nodes(n: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    # one size: the nodes share one calibration (and the test its cost)
    return {f"node-{i}": torch.randn(80, 115, generator=gen) * (i + 1) + i for i in range(n)}


def test_every_node_reports_what_it_spent_within_the_target_and_no_loss():
    # Execute
    result = run_federation(nodes(3), CONFIG)

    # Assert: after the last round each node has spent its calibrated ε (≤ target); losses are not sent
    last = result.history[-1]
    for name, rows in nodes(3).items():
        assert last["nodes"][name]["epsilon"] == pytest.approx(dp.plan(CONFIG, len(rows)).epsilon())
        assert 0.97 * CONFIG.dp_epsilon <= last["nodes"][name]["epsilon"] <= CONFIG.dp_epsilon
        assert math.isnan(last["nodes"][name]["loss"])
    assert result.history[0]["epsilon"] < last["epsilon"] <= CONFIG.dp_epsilon
    assert np.all(np.isfinite(result.reference))


def test_the_update_differs_from_run_to_run_because_the_noise_is_secret():
    # The seed is public (the server sends it): noise drawn from it could be subtracted.
    first, second = run_federation(nodes(2), CONFIG), run_federation(nodes(2), CONFIG)

    assert any(not np.array_equal(a, b) for a, b in zip(first.arrays, second.arrays))


def test_differential_privacy_runs_under_secure_aggregation():
    config = dataclasses.replace(CONFIG, aggregation="dynamic", secure_aggregation=True)

    result = run_federation(nodes(2), config)

    assert len(result.history) == 2 and result.history[-1]["epsilon"] <= config.dp_epsilon
    assert all(node["distance"] is not None for node in result.history[-1]["nodes"].values())


def test_the_settings_round_trip_through_a_config_file_and_a_flower_config_record(tmp_path):
    for config in (FedCLConfig(), FedCLConfig(dp_epsilon=2.5, dp_delta=1e-6, dp_clip=0.5)):
        save_config(config, tmp_path / "c.toml")
        assert load_config(tmp_path / "c.toml") == config
        assert read_config_record(config_record(config, None))[0] == config.updated(data="")


@pytest.mark.parametrize(("args", "message"), [
    (["--dp-epsilon", "0"], "dp_epsilon must be positive"),
    (["--dp-epsilon", "-2"], "dp_epsilon must be positive"),
    (["--dp-epsilon", "1", "--dp-delta", "1.5"], "dp_delta must be in (0, 1)"),
])
def test_cli_refuses_bad_privacy_values_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["run", *args, "--out", str(tmp_path / "r")])

    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_reports_the_epsilon_spent_in_metrics_and_report(fedmse_slice, tmp_path):
    # Execute
    result = CliRunner().invoke(app, ["run", "--data", str(fedmse_slice), "--out", str(tmp_path / "r"),
                                      "--rounds", "2", "--embedding-dim", "8", "--personalisation", "off",
                                      "--dp-epsilon", "3", "--dp-delta", "1e-6"])

    # Assert
    assert result.exit_code == 0, result.output
    privacy = json.loads((tmp_path / "r" / "metrics.json").read_text())["privacy"]
    assert 0.97 * 3 <= privacy["epsilon"] <= 3 and privacy["delta"] == 1e-6
    assert "RDPAccountant" in privacy["accountant"] and "DP-SGD" in privacy["mechanism"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"ε = {privacy['epsilon']:.4g} spent per node" in report


def test_flower_simulate_trains_under_differential_privacy(fedmse_slice, tmp_path):
    # Prepare: the model's settings from the TOML file, ε from the option
    toml = tmp_path / "dp.toml"
    toml.write_text("rounds = 2\nembedding_dim = 8\npersonalisation = \"off\"\n")

    # Execute: the ServerApp and ClientApps in this process (the ClientApp trains through local_train)
    result = CliRunner().invoke(app, ["flower", "simulate", "--data", str(fedmse_slice), "--config", str(toml),
                                      "--dp-epsilon", "2", "--out", str(tmp_path / "run")])

    # Assert: each node's reply carried its ε and no loss; metrics.json and the report say what was spent
    assert result.exit_code == 0, result.output
    history = [json.loads(line) for line in (tmp_path / "run" / HISTORY_FILE).read_text().splitlines()]
    assert [h["round"] for h in history] == [1, 2]
    for node in history[-1]["nodes"].values():
        assert 0.97 * 2.0 <= node["epsilon"] <= 2.0 and math.isnan(node["loss"])
    privacy = json.loads((tmp_path / "run" / "metrics.json").read_text())["privacy"]
    assert privacy["epsilon"] == max(n["epsilon"] for n in history[-1]["nodes"].values())
    assert "record-level differential privacy" in (tmp_path / "run" / "report.md").read_text()


def test_a_step_whose_poisson_sample_is_empty_still_adds_its_noise():
    # Prepare: a layer under Opacus as local training builds it, plain SGD with lr 1 so the step is the noise
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    model = GradSampleModule(torch.nn.Linear(200, 100), loss_reduction="sum")
    sigma, clip, batch = 2.0, 1.0, 4
    optimiser = DPOptimizer(torch.optim.SGD(model.parameters(), lr=1.0), noise_multiplier=sigma, max_grad_norm=clip,
                            expected_batch_size=batch, loss_reduction="mean", generator=dp.secret_generator(),
                            secure_mode=True)
    before = [p.detach().clone() for p in model.parameters()]

    # Execute: no row was sampled
    optimiser.zero_grad(set_to_none=True)
    dp.no_rows_gradients(model.parameters())
    optimiser.step()

    # Assert: every parameter moved by N(0, (σC/B)²), the noise the accountant counts for this step
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert abs(moved.mean().item()) < 0.05 * sigma * clip / batch
    assert moved.std().item() == pytest.approx(sigma * clip / batch, rel=0.05)
