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
    calls = []

    def callback(*_):
        calls.append(1)
        if len(calls) == count:
            raise KeyboardInterrupt

    return callback


def assert_same_model(a, b):
    saved_a, saved_b = torch.load(a / "model.pt", weights_only=True), torch.load(b / "model.pt", weights_only=True)
    assert saved_a["windows"] == saved_b["windows"]
    for name in ("encoder", *(f"nodes.{n}" for n in saved_a["nodes"])):
        part_a, part_b = saved_a, saved_b
        for key in name.split("."):
            part_a, part_b = part_a[key], part_b[key]
        assert part_a.keys() == part_b.keys()
        for key in part_a:
            torch.testing.assert_close(part_a[key], part_b[key], rtol=0, atol=0, msg=f"{name}.{key}")


@pytest.mark.parametrize("where, settings", [
    ("round", {}),
    ("round", {"compression_bits": 4}),  # θ̂ and the nodes' residuals carry over
    ("node", {}),
])
def test_a_run_interrupted_then_resumed_saves_the_uninterrupted_model(fedmse_slice, tmp_path, monkeypatch,
                                                                     where, settings):
    # Prepare
    config = FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2, **settings)
    whole = train(config, tmp_path / "whole")
    monkeypatch.setattr(training_module, "_OWN_ARRAYS", {})  # each node trains its own encoder again
    interrupted = tmp_path / "interrupted"
    stop = {"on_round": stop_at(2)} if where == "round" else {"on_node": stop_at(2)}

    # Execute
    with pytest.raises(KeyboardInterrupt):
        train(config, interrupted, **stop)
    kept = sorted(p.name for p in interrupted.iterdir())
    resumed_nodes = []
    train(config, interrupted, resume=True, on_node=lambda name, _: resumed_nodes.append(name))

    # Assert
    assert "model.pt" not in kept and "checkpoint.pt" in kept
    assert ("checkpoint-nodes" in kept) == (where == "node")
    assert resumed_nodes == (["Client-1", "Client-2", "Client-3"] if where == "round" else ["Client-3"])
    assert_same_model(whole, interrupted)
    assert (interrupted / "history.jsonl").read_text() == (whole / "history.jsonl").read_text()
    assert sorted(p.name for p in interrupted.iterdir()) == ["config.toml", "history.jsonl", "model.pt"]


def test_more_rounds_on_resume_train_on_and_fit_every_node_again(fedmse_slice, tmp_path):
    # Prepare: a run stopped while fitting its node detectors, after its 2 rounds
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        train(FedCLConfig(data=str(fedmse_slice), rounds=2, seed=2), out, on_node=stop_at(2))
    nodes = []

    # Execute
    fewer = runner.invoke(app, ["train", "--data", str(fedmse_slice), "--seed", "2", "--rounds", "1", "--out", str(out),
                                "--resume"])
    train(FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2), out, resume=True,
          on_node=lambda name, _: nodes.append(name))

    # Assert
    assert fewer.exit_code == 2 and fewer.output.strip().endswith("the checkpoint is at round 2, beyond rounds=1")
    assert len(fewer.output.strip().splitlines()) == 1
    assert [entry.count('"round"') for entry in (out / "history.jsonl").read_text().splitlines()] == [1, 1, 1]
    assert nodes == ["Client-1", "Client-2", "Client-3"]  # fitted on round 3's encoder


def test_resume_refusals_are_one_line_with_exit_2(fedmse_slice, tmp_path):
    # Prepare: an interrupted run and a finished one
    interrupted, finished = tmp_path / "interrupted", tmp_path / "finished"
    with pytest.raises(KeyboardInterrupt):
        train(FedCLConfig(data=str(fedmse_slice), rounds=3, seed=2), interrupted, on_round=stop_at(1))
    train(FedCLConfig(data=str(fedmse_slice), rounds=1, seed=2), finished)
    args = ["train", "--data", str(fedmse_slice), "--seed", "2"]

    # Execute
    over = runner.invoke(app, [*args, "--rounds", "3", "--out", str(interrupted)])
    changed = runner.invoke(app, [*args, "--rounds", "3", "--lr", "0.01", "--out", str(interrupted), "--resume"])
    done = runner.invoke(app, [*args, "--rounds", "1", "--out", str(finished), "--resume"])
    nothing = runner.invoke(app, [*args, "--rounds", "1", "--out", str(tmp_path / "new"), "--resume"])

    # Assert
    for result, says in ((over, "add --resume to continue it"), (changed, "lr 0.001 -> 0.01"),
                         (done, "nothing to resume"), (nothing, "no checkpoint.pt to resume from")):
        assert result.exit_code == 2, result.output
        assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert (interrupted / "checkpoint.pt").is_file()  # no refusal touched it


def test_ctrl_c_says_what_the_run_keeps_and_how_to_go_on(fedmse_slice, tmp_path, monkeypatch):
    # Prepare: Ctrl-C in the second round
    out = tmp_path / "r"
    real_train = training_module.train
    monkeypatch.setattr("fedcl.pipeline.train", lambda *a, **k: real_train(*a, **{**k, "on_round": stop_at(2)}))

    # Execute
    result = runner.invoke(app, ["train", "--data", str(fedmse_slice), "--rounds", "3", "--out", str(out)])

    # Assert
    assert result.exit_code == 130
    assert f"interrupted: {out} keeps 2 of 3 round(s) and 0 of 3 node detector(s)" in " ".join(result.stderr.split())
    assert "--resume goes on" in result.stderr
