"""Federated evaluation: the nodes evaluate the final model on their own rows; the server gathers metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from sklearn.metrics import roc_auc_score

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.eval.metrics import fpr_at_tpr
from fedcl.federated.flower import InProcessGrid, run_server
from fedcl.federated.flower.client_app import app
from fedcl.federated.flower.fleet import FLEET_FILE, SCORE_EDGES, _malformed, pooled_metrics
from fedcl.federated.flower.inprocess import _act_as_superlink
from fedcl.pipeline import evaluate

NAMES = ["Client-1", "Client-2", "Client-3"]


def node_configs(root):
    return [{"data-path": str(root / name), "partition-id": i} for i, name in enumerate(NAMES, start=1)]


class SilentNodeGrid(InProcessGrid):
    """Delivers as a SuperNode does, except that ``silent``'s evaluate message is never answered."""

    def __init__(self, *args, silent: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.silent = silent

    def push_messages(self, messages):
        messages = list(messages)
        heard = [m for m in messages
                 if not (m.metadata.message_type == "evaluate" and m.metadata.dst_node_id == self.silent)]
        return [*super().push_messages(heard), *(["lost"] if len(heard) < len(messages) else [])]


class FailingNodeGrid(InProcessGrid):
    """A node whose ClientApp fails answers with an error reply, as on a SuperNode."""

    def __init__(self, *args, failing: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failing = failing

    def push_messages(self, messages):
        ids = []
        for message in messages:
            if message.metadata.message_type == "evaluate" and message.metadata.dst_node_id == self.failing:
                ids.append(f"failed-{message.metadata.dst_node_id}")
                _act_as_superlink(message, ids[-1])  # the id the SuperLink gives a message it accepts
                self._replies[ids[-1]] = Message(Error(code=0, reason="disk full"), reply_to=message)
            else:
                ids += super().push_messages([message])
        return ids


@pytest.fixture(scope="module")
def evaluated_run(fedmse_slice, tmp_path_factory, one_torch_thread):
    """A 2-round in-process Flower run (each node evaluates at the end), then `fedcl evaluate` on one machine."""
    out = tmp_path_factory.mktemp("fleet") / "run"
    run_server(InProcessGrid(app, node_configs(fedmse_slice)), FedCLConfig(rounds=2, seed=3), out, min_nodes=3)
    fleet = json.loads((out / FLEET_FILE).read_text())
    return out, fleet, evaluate(out, data=str(fedmse_slice))


def test_each_node_reports_the_metrics_fedcl_evaluate_computes_from_its_rows(evaluated_run):
    # Prepare / Execute: the fixture's run
    out, fleet, central = evaluated_run

    # Assert: every node's metrics are those `fedcl evaluate` computes with every row on one machine
    assert list(fleet["nodes"]) == NAMES and fleet["not_evaluated"] == []
    for name in NAMES:
        for key, value in central["nodes"][name].items():
            assert fleet["nodes"][name][key] == pytest.approx(value, abs=1e-12), (name, key)
    assert fleet["counts"] == central["counts"]
    # each node's training and validation rows, and the same lines on thresholds that rest on few rows
    assert {n: (fleet["nodes"][n]["training"], fleet["nodes"][n]["validation"]) for n in NAMES} == \
        {n: (central["rows"][n]["training"], central["rows"][n]["validation"]) for n in NAMES}
    assert fleet["few_rows"] == central["few_rows"] != []
    # Threshold metrics pool exactly from counts; ranking metrics from the histograms, at their resolution
    for key in ("accuracy", "precision", "recall", "f1", "fpr"):
        assert fleet["pooled"][key] == pytest.approx(central["pooled"][key], abs=1e-12), key
    assert fleet["pooled"]["auroc"] == pytest.approx(central["pooled"]["auroc"], abs=2e-3)
    assert fleet["mean_over_nodes"]["auroc"] == pytest.approx(np.mean([central["nodes"][n]["auroc"] for n in NAMES]))
    assert fleet["pooled"]["auroc"] > 0.9


def test_the_fleet_report_names_every_node_with_its_exclusions(evaluated_run):
    # Prepare / Execute: the fixture's run
    out, fleet, _ = evaluated_run

    # Assert
    text = (out / "fleet.md").read_text()
    for name in NAMES:
        assert f"| {name} | " in text
    assert "Not evaluated: every node answered." in text
    assert "- Client-1: its threshold comes from 80 benign validation rows" in text
    assert (out / "fleet_roc.png").stat().st_size > 0
    assert all(fleet["nodes"][n]["rounds_excluded"] == [] for n in NAMES)


@pytest.mark.parametrize("grid, reason", [(SilentNodeGrid, "no accepted answer within 9 s"), (FailingNodeGrid, "disk full")])
def test_a_node_that_does_not_evaluate_is_listed_and_left_out(fedmse_slice, tmp_path, one_torch_thread, grid, reason):
    # Prepare: node 2 (Client-2) trains but does not evaluate (a node's evaluation may take 3 s × (2 × 1 round
    # + 1): under the default personalisation it trains its own encoder and fine-tunes the federation's)
    kind = {"silent": 2} if grid is SilentNodeGrid else {"failing": 2}

    # Execute
    run_server(grid(app, node_configs(fedmse_slice), **kind), FedCLConfig(rounds=1), tmp_path / "run", min_nodes=3,
               round_timeout=3)

    # Assert: the run completes; the two others are the fleet
    fleet = json.loads((tmp_path / "run" / FLEET_FILE).read_text())
    assert list(fleet["nodes"]) == ["Client-1", "Client-3"]
    assert fleet["not_evaluated"] == [f"node 2: {reason}"]
    assert fleet["counts"]["benign_test"] == sum(fleet["nodes"][n]["benign_test"] for n in ("Client-1", "Client-3"))
    assert f"node 2: {reason}" in (tmp_path / "run" / "fleet.md").read_text()


def test_no_evaluation_when_the_run_says_so(fedmse_slice, tmp_path, one_torch_thread):
    run_server(InProcessGrid(app, node_configs(fedmse_slice)), FedCLConfig(rounds=1), tmp_path / "run", min_nodes=3,
               evaluate=False)
    assert (tmp_path / "run" / "model.pt").is_file() and not (tmp_path / "run" / FLEET_FILE).exists()


def test_pooled_metrics_from_histograms_are_exact_when_no_bin_holds_both_classes():
    # Prepare: benign and attack scores that share no bin of SCORE_EDGES, with ties inside each class's bins
    rng = np.random.default_rng(0)
    benign = rng.uniform(0.5, 2.0, 500)
    attack = np.r_[rng.uniform(1.5, 1.6, 5), rng.uniform(3.0, 50.0, 300)]  # 5 inside the benign range
    benign = benign[~np.isin(np.searchsorted(SCORE_EDGES, benign), np.searchsorted(SCORE_EDGES, attack))]
    histogram = lambda s: np.histogram(s, SCORE_EDGES)[0]  # noqa: E731

    # Execute
    pooled = pooled_metrics(histogram(benign), histogram(attack), flagged_benign=7, flagged_attack=200)

    # Assert
    y, s = np.r_[np.zeros(len(benign)), np.ones(len(attack))], np.r_[benign, attack]
    assert pooled["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert pooled["fpr_at_tpr99"] == pytest.approx(fpr_at_tpr(y, s), abs=1e-12)
    assert pooled["recall"] == pytest.approx(200 / len(attack)) and pooled["fpr"] == pytest.approx(7 / len(benign))


def _reply(name="Client-1", benign=(3, 0), attack=(2, 2), length=len(SCORE_EDGES) - 1, validation=4):
    """An evaluation reply: (rows, flagged) of each class; benign rows in a low bin, attack rows in the top one."""
    hist = np.zeros(length, dtype=int)
    histograms = {"benign": hist.copy(), "attack": hist.copy()}
    histograms["benign"][1], histograms["attack"][-1] = benign[0], attack[0]
    metrics = {"benign-test": benign[0], "attack": attack[0], "flagged-benign": benign[1], "flagged-attack": attack[1],
               "training": 12, "validation": validation}
    return RecordDict({"metrics": MetricRecord(metrics),
                       "histograms": MetricRecord({k: v.tolist() for k, v in histograms.items()}),
                       "node": ConfigRecord({"node-name": name, "partition-id": 1})})


@pytest.mark.parametrize("reply, reason", [
    (_reply(length=10), "histogram benign is not 1002 counts"),
    (_reply(attack=(2, 3)), "flagged rows are not between 0 and the row counts"),
    (_reply(name="Client-2"), "a second reply named Client-2"),
    (_reply(validation=-1), "a negative count of training or validation rows"),
    (RecordDict({**_reply(), "histograms": MetricRecord({"attack": [0] * 1002})}), "no benign histogram"),
])
def test_an_evaluation_reply_that_does_not_add_up_is_left_out_with_its_reason(reply, reason):
    assert _malformed(_reply(), set()) == ""
    assert _malformed(reply, {"Client-2"}) == reason


def test_a_run_under_differential_privacy_sends_no_evaluation(fedmse_slice, tmp_path, one_torch_thread, caplog):
    # The replies depend on the training rows, which ε does not count
    with caplog.at_level("WARNING", logger="flwr"):
        run_server(InProcessGrid(app, node_configs(fedmse_slice)), FedCLConfig(rounds=1, dp_epsilon=8.0),
                   tmp_path / "run", min_nodes=3)
    assert (tmp_path / "run" / "model.pt").is_file() and not (tmp_path / "run" / FLEET_FILE).exists()
    assert "no federated evaluation under differential privacy" in caplog.text


def test_nodes_that_accept_each_others_benign_rows_evaluate_as_fedcl_evaluate_does(fedmse_slice, tmp_path,
                                                                                   one_torch_thread):
    # Prepare: each node releases its federation view (query.release) before the evaluation
    config = FedCLConfig(rounds=1, seed=3, acceptance_margin=1.0)

    # Execute
    run_server(InProcessGrid(app, node_configs(fedmse_slice)), config, tmp_path / "run", min_nodes=3)
    fleet = json.loads((tmp_path / "run" / FLEET_FILE).read_text())
    central = evaluate(tmp_path / "run", data=str(fedmse_slice))

    # Assert: every node accepted from the two others, and its metrics are those `fedcl evaluate` computes
    # with every row on one machine (where acceptance needs no release); acceptance changed them
    assert fleet["acceptance"] == {"margin": 1.0, "views_released": NAMES, "not_released": []}
    for name in NAMES:
        for key, value in central["nodes"][name].items():
            assert fleet["nodes"][name][key] == pytest.approx(value, abs=1e-12), (name, key)
    plain = evaluate_without_acceptance(tmp_path / "run", fedmse_slice, tmp_path / "plain")
    assert any(plain["nodes"][n]["fpr"] != central["nodes"][n]["fpr"] or
               plain["nodes"][n]["auroc"] != central["nodes"][n]["auroc"] for n in NAMES)


def evaluate_without_acceptance(run, data, out):
    """`fedcl evaluate` of a copy of ``run`` whose config turns acceptance off."""
    import shutil

    shutil.copytree(run, out)
    config = out / "config.toml"
    config.write_text(config.read_text().replace("acceptance_margin = 1.0", "acceptance_margin = 0.0"))
    return evaluate(out, data=str(data))


class ForgedViewGrid(InProcessGrid):
    """Node ``forger`` releases a view whose alarm line is NaN: it would accept every row at its peers."""

    def __init__(self, *args, forger: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.forger = forger

    def pull_messages(self, message_ids):
        replies = list(super().pull_messages(message_ids))
        for reply in replies:
            if reply.metadata.message_type == "query.release" and reply.metadata.src_node_id == self.forger:
                state = reply.content["view"].to_torch_state_dict()
                reply.content["view"] = ArrayRecord(torch_state_dict={**state, "threshold": state["threshold"] * np.nan})
        return replies


def test_a_view_that_cannot_score_is_not_relayed_and_the_others_still_accept(fedmse_slice, tmp_path, one_torch_thread):
    # Execute: node 2 (Client-2) releases a NaN alarm line
    run_server(ForgedViewGrid(app, node_configs(fedmse_slice), forger=2),
               FedCLConfig(rounds=1, seed=3, acceptance_margin=1.0), tmp_path / "run", min_nodes=3)

    # Assert: its view is listed with why and relayed to no one; every node still evaluates
    fleet = json.loads((tmp_path / "run" / FLEET_FILE).read_text())
    assert fleet["acceptance"]["views_released"] == ["Client-1", "Client-3"]
    assert fleet["acceptance"]["not_released"] == ["node 2: values that are not finite"]
    assert list(fleet["nodes"]) == NAMES and fleet["not_evaluated"] == []


def test_a_node_releases_no_view_unless_the_run_accepts(fedmse_slice):
    from fedcl.federated.flower._records import config_record

    message = Message(RecordDict({"arrays": ArrayRecord([]), "config": config_record(FedCLConfig(), None)}),
                      dst_node_id=1, message_type="query.release")

    # the ClientApp raises (a SuperNode replies with the error)
    with pytest.raises(ConfigError, match="acceptance_margin is 0: the node releases no view"):
        InProcessGrid(app, node_configs(fedmse_slice)).send_and_receive([message], timeout=60)
