"""An interrupted `fedcl train` goes on from its checkpoint to the model an uninterrupted run saves."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.pipeline import train
from fedcl.pipeline import training as training_module

runner = CliRunner()


def stop_at(count: int):
    """A callback that acts as Ctrl-C the ``count``-th time it is called."""
    calls = []

    def callback(*_):
        calls.append(1)
        if len(calls) == count:
            raise KeyboardInterrupt

    return callback


def assert_same_model(a, b):
    saved_a, saved_b = torch.load(a / "model.pt", weights_only=True), torch.load(b / "model.pt", weights_only=True)
    assert saved_a["windows"] == saved_b["windows"]
    assert torch.equal(saved_a["reference"], saved_b["reference"])
    for part_a, part_b in [(saved_a["encoder"], saved_b["encoder"]),
                           *((saved_a["nodes"][n], saved_b["nodes"][n]) for n in saved_a["nodes"])]:
        assert part_a.keys() == part_b.keys()
        for key in part_a:
            assert torch.equal(part_a[key], part_b[key]), key
    assert (a / "history.jsonl").read_text() == (b / "history.jsonl").read_text()


@pytest.fixture
def fresh_own_encoders(monkeypatch):
    monkeypatch.setattr(training_module, "_OWN_ARRAYS", {})  # each node trains its own encoder again


@pytest.mark.parametrize("where, settings", [
    ("round", {}),
    ("round", {"compression_bits": 4}),  # θ̂ and the nodes' residuals carry over
    ("node", {}),
])
def test_a_run_interrupted_then_resumed_saves_the_uninterrupted_model(fedmse_slice, tmp_path, fresh_own_encoders,
                                                                     where, settings):
    # Prepare
    config = FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2, **settings)
    whole = train(config, tmp_path / "whole")
    interrupted = tmp_path / "interrupted"
    # Ctrl-C as round 2 ends: its history line is written, its checkpoint is not (trained again on resume)
    stop = {"on_round": stop_at(2)} if where == "round" else {"on_node": stop_at(2)}

    # Execute
    with pytest.raises(KeyboardInterrupt):
        train(config, interrupted, **stop)
    kept = sorted(p.name for p in interrupted.iterdir())
    resumed_nodes = []
    train(config, interrupted, resume=True, on_node=lambda name, _: resumed_nodes.append(name))

    # Assert
    assert "model.pt" not in kept and "checkpoint-train.pt" in kept
    assert ("checkpoint-nodes" in kept) == (where == "node")
    assert resumed_nodes == (["Client-1", "Client-2", "Client-3"] if where == "round" else ["Client-3"])
    assert_same_model(whole, interrupted)
    assert sorted(p.name for p in interrupted.iterdir()) == ["config.toml", "history.jsonl", "model.pt"]


def test_node_level_dp_resumes_its_secret_draws(fedmse_slice, tmp_path, monkeypatch, fresh_own_encoders):
    # Prepare: the server's secret generator seeded, so that two runs can be compared
    monkeypatch.setattr("fedcl.privacy.node_dp.secret_generator", lambda: torch.Generator().manual_seed(7))
    config = FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2, aggregation="fedavg", dp_level="node",
                         dp_epsilon=8.0, dp_sample_rate=0.7)
    whole = train(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "interrupted", on_round=stop_at(2))

    # Execute
    train(config, tmp_path / "interrupted", resume=True)

    # Assert
    assert_same_model(whole, tmp_path / "interrupted")


def test_more_rounds_on_resume_train_on_and_fit_every_node_again(fedmse_slice, tmp_path, fresh_own_encoders):
    # Prepare: a 2-round run stopped after fitting 2 node detectors, then resumed for 3 rounds and
    # stopped again after fitting 1 (on round 3's encoder)
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        train(FedCLConfig(data=str(fedmse_slice), rounds=2, seed=2), out, on_node=stop_at(2))
    fewer = runner.invoke(app, ["train", "--data", str(fedmse_slice), "--seed", "2", "--rounds", "1", "--out", str(out),
                                "--resume"])
    config = FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, out, resume=True, on_node=stop_at(1))
    nodes = []

    # Execute
    train(config, out, resume=True, on_node=lambda name, _: nodes.append(name))

    # Assert: every node fitted on round 3's encoder (none of round 2's kept), as in a 3-round run
    assert fewer.exit_code == 2 and fewer.output.strip().endswith("the checkpoint is at round 2, beyond rounds=1")
    assert len(fewer.output.strip().splitlines()) == 1
    assert nodes == ["Client-2", "Client-3"]
    assert_same_model(train(config, tmp_path / "whole"), out)


def test_resume_refusals_are_one_line_with_exit_2(fedmse_slice, tmp_path):
    # Prepare: an interrupted run, a finished one, and the same nodes with other rows
    interrupted, finished = tmp_path / "interrupted", tmp_path / "finished"
    with pytest.raises(KeyboardInterrupt):
        train(FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2), interrupted, on_round=stop_at(2))
    train(FedCLConfig(data=str(fedmse_slice), rounds=1, seed=2), finished)
    other = tmp_path / "other-rows"
    for client in ("Client-1", "Client-2", "Client-3"):
        for part in ("normal", "test_normal", "abnormal"):
            (other / client / part).mkdir(parents=True)
            rows = (fedmse_slice / client / part / "data.csv").read_text().splitlines()
            (other / client / part / "data.csv").write_text("\n".join(rows[1:] if client == "Client-2" else rows) + "\n")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.toml").write_text((interrupted / "config.toml").read_text())
    (corrupt / "checkpoint-train.pt").write_bytes(b"not a checkpoint")
    args = ["train", "--seed", "2", "--rounds", "3"]

    # Execute
    results = {
        "add --resume to continue it": runner.invoke(app, [*args, "--data", str(fedmse_slice), "--out", str(interrupted)]),
        "lr 0.001 -> 0.01": runner.invoke(app, [*args, "--data", str(fedmse_slice), "--lr", "0.01", "--out",
                                                str(interrupted), "--resume"]),
        "node(s) Client-2 differ": runner.invoke(app, [*args, "--data", str(other), "--out", str(interrupted), "--resume"]),
        "nothing to resume": runner.invoke(app, ["train", "--seed", "2", "--rounds", "1", "--data", str(fedmse_slice),
                                                 "--out", str(finished), "--resume"]),
        "no checkpoint-train.pt to resume from": runner.invoke(app, [*args, "--data", str(fedmse_slice), "--out",
                                                                      str(tmp_path / "new"), "--resume"]),
        "not a readable checkpoint": runner.invoke(app, [*args, "--data", str(fedmse_slice), "--out", str(corrupt),
                                                         "--resume"]),
    }

    # Assert
    for says, result in results.items():
        assert result.exit_code == 2, (says, result.output)
        assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert (interrupted / "checkpoint-train.pt").is_file()  # no refusal touched it


def test_ctrl_c_says_what_the_run_keeps_and_how_to_go_on(fedmse_slice, tmp_path, monkeypatch):
    # Prepare: Ctrl-C as round 2 ends, before its checkpoint
    out = tmp_path / "r"
    real_train = training_module.train
    monkeypatch.setattr("fedcl.pipeline.train", lambda *a, **k: real_train(*a, **{**k, "on_round": stop_at(2)}))

    # Execute
    result = runner.invoke(app, ["train", "--data", str(fedmse_slice), "--rounds", "3", "--out", str(out)])

    # Assert
    assert result.exit_code == 130
    assert f"interrupted: {out} keeps 1 of 3 round(s) and 0 of 3 node detector(s)" in " ".join(result.stderr.split())
    assert "--resume goes on" in result.stderr
