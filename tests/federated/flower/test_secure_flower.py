"""Secure aggregation on Flower: the same masked run as in-process, and a server that sees only sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord
from typer.testing import CliRunner

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.federated import run_federation
from fedcl.federated.flower import InProcessGrid, run_server
from fedcl.federated.flower._records import kept_update
from fedcl.federated.flower.client_app import app
from fedcl.federated.flower.server import CHECKPOINT_FILE
from fedcl.federated.flower.server_app import config_from_run_config
from fedcl.pipeline import load_splits, scaled_training_rows
from fedcl.privacy import decode, encode, update_vector

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ["Client-1", "Client-2", "Client-3"]
TINY = dict(rounds=2, seed=3, hidden=8, embedding_dim=4, batch_size=64, secure_aggregation=True)


class RecordingGrid(InProcessGrid):
    """The in-process grid, keeping every reply the server side receives; ``silent`` maps a message type
    to the partition ids whose replies to it are lost (a node that stops answering)."""

    def __init__(self, nodes: list[dict], silent: dict[str, set[int]] | None = None) -> None:
        super().__init__(app, nodes)
        self.partition = {node_id: int(cfg["partition-id"]) for node_id, cfg in enumerate(nodes, start=1)}
        self.silent, self.replies = silent or {}, []

    def pull_messages(self, message_ids):
        replies = [r for r in super().pull_messages(message_ids)
                   if self.partition[r.metadata.src_node_id] not in self.silent.get(r.metadata.message_type, ())]
        self.replies += replies
        return replies


def node_configs(root, names=NAMES):
    return [{"data-path": str(root / name), "partition-id": i} for i, name in enumerate(names)]


def in_process(root, config, names=NAMES):
    rows = {s.name: scaled_training_rows(s) for s in load_splits(config.updated(data=str(root)))
            if s.name in names}
    return run_federation(rows, config)


def assert_same_run(out_dir, flower, plain):
    saved = torch.load(out_dir / CHECKPOINT_FILE, weights_only=True)
    for a, b in zip(plain.arrays, saved["arrays"]):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(flower.reference, plain.reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("rule", ["fedavg", "dynamic"])
def test_masked_flower_run_equals_the_masked_in_process_run(fedmse_slice, tmp_path, rule):
    # Prepare
    config = FedCLConfig(aggregation=rule, **TINY)

    # Execute
    plain = in_process(fedmse_slice, config)
    flower = run_server(RecordingGrid(node_configs(fedmse_slice)), config, tmp_path / "run", min_nodes=3)

    # Assert: same θ and g, and the history records the same weights and released d_i
    assert_same_run(tmp_path / "run", flower, plain)
    for p, f in zip(plain.history, flower.history):
        assert list(f["nodes"]) == list(p["nodes"])
        for name, node in f["nodes"].items():
            assert node["weight"] == pytest.approx(p["nodes"][name]["weight"], rel=1e-9)
            assert node["distance"] == (None if rule == "fedavg" else pytest.approx(p["nodes"][name]["distance"]))


def test_the_server_side_never_receives_a_nodes_update_or_statistics_in_the_clear(fedmse_slice, tmp_path):
    # Prepare
    config = FedCLConfig(aggregation="dynamic", **TINY)
    grid = RecordingGrid(node_configs(fedmse_slice))

    # Execute
    strategy = run_server(grid, config, tmp_path / "run", min_nodes=3)

    # Assert: no reply holds arrays or float vectors; numbers are single scalars, vectors are ring bytes
    assert grid.replies
    for reply in grid.replies:
        records = reply.content
        assert not isinstance(records, ArrayRecord) and not list(records.array_records)
        for record in list(records.metric_records.values()) + list(records.config_records.values()):
            for key, value in record.items():
                if isinstance(value, list):
                    assert all(isinstance(v, (int, bytes)) for v in value), (reply.metadata.message_type, key)
    train = [r for r in grid.replies if r.metadata.message_type == "train"]
    assert len(train) == 3 * config.rounds
    assert {tuple(sorted(r.content["metrics"])) for r in train} == {("contrastive", "distance", "loss", "num-examples")}
    # The masked vector a node sent is nothing like its weighted update, which the sum still recovers.
    view = strategy.last_secure_round.servers[-1]  # the last round's weighted sum
    weights = [n["weight"] for n in strategy.history[-1]["nodes"].values()]
    clear = {i: update_vector(kept_update(grid._contexts[i].state, config.rounds), w)
             for i, w in zip((1, 2, 3), weights)}
    for i, x in clear.items():
        assert np.mean(view.masked[i] == encode(x)) < 0.01
    assert np.abs(decode(np.sum(np.stack(list(view.masked.values())), axis=0, dtype=np.uint64))
                  - sum(clear.values())).max() > 1e3  # masked Σ without unmasking is noise


def test_a_node_silent_after_sharing_its_keys_is_recovered_and_left_out(fedmse_slice, tmp_path):
    # Prepare: Client-3 never delivers its masked vector; fedavg over the other two is the expected run
    config = FedCLConfig(aggregation="fedavg", **TINY)
    grid = RecordingGrid(node_configs(fedmse_slice), silent={"query.secagg_mask": {2}})

    # Execute
    flower = run_server(grid, config, tmp_path / "run", min_nodes=3, round_timeout=3)  # the lost replies' wait
    plain = in_process(fedmse_slice, config, names=NAMES[:2])

    # Assert
    assert_same_run(tmp_path / "run", flower, plain)
    for record in flower.history:
        assert record["nodes"]["Client-3"]["weight"] == 0
        assert record["nodes"]["Client-3"]["reason"] == "dropped out during secure aggregation"
    unmask = [r for r in grid.replies if r.metadata.message_type == "query.secagg_unmask"]
    assert len(unmask) == 2 * config.rounds  # the two survivors gave the shares that removed Client-3's masks


def test_a_round_left_with_too_few_nodes_is_skipped(fedmse_slice, tmp_path):
    grid = RecordingGrid(node_configs(fedmse_slice), silent={"query.secagg_mask": {1, 2}})

    strategy = run_server(grid, FedCLConfig(aggregation="fedavg", **TINY), tmp_path / "run", min_nodes=3,
                          round_timeout=3)

    assert strategy.history == []  # every round lost two of three nodes mid-protocol: none aggregated
    assert (tmp_path / "run" / "model.pt").is_file()  # the run still ends, with the initial θ


@pytest.mark.parametrize("rule", ["krum", "dynamic-guarded", "median"])
def test_robust_rules_under_secure_aggregation_are_refused_on_flower_in_one_line(tmp_path, rule):
    # The ServerApp's settings, and `fedcl flower simulate --config`
    with pytest.raises(ConfigError, match=f"aggregation {rule} cannot run under secure_aggregation") as refused:
        config_from_run_config({"aggregation": rule, "secure_aggregation": True})
    assert "\n" not in str(refused.value)

    (tmp_path / "c.toml").write_text(f'aggregation = "{rule}"\nsecure_aggregation = true\n')
    from fedcl.cli import app as cli

    result = CliRunner().invoke(cli, ["flower", "simulate", "--data", str(tmp_path),
                                      "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"aggregation {rule} cannot run under secure_aggregation" in result.output
    assert len(result.output.strip().splitlines()) == 1

