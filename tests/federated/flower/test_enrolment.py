"""Fleet enrolment: the registry refuses duplicates, names the nodes the server hears, feeds `fedcl flower nodes`.

The real loopback path (the `fedcl flower superlink --registry` wrapper registering the enrolled keys,
the ServerApp reading the registry, `fedcl flower nodes` against a live SuperLink) runs in
``test_deployment.py``, on the federation that module starts anyway.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.federated.flower import InProcessGrid
from fedcl.federated.flower.certificates import generate_node_keys
from fedcl.federated.flower.client_app import app as client_app
from fedcl.federated.flower.registry import (REGISTRY_ENV, EnrolledGrid, Enrolment, enrol, enrolled_grid, fleet_view,
                                             read_registry, record_node_ids)
from fedcl.federated.flower.server import run_server
from fedcl.rundir import HISTORY_FILE, read_history

runner = CliRunner()
NAMES = ("Client-1", "Client-2", "Client-3")
REASON = "update points away from the federation's (cosine -0.41 to the median update)"  # as the guarded rule says


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Four (private, public) SuperNode key pairs."""
    return generate_node_keys(tmp_path_factory.mktemp("keys"), 4)


def _one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def _enrolled(path, keys, ids=(1, 2, 3)) -> list[Enrolment]:
    for i, (name, (_, pub)) in enumerate(zip(NAMES, keys), start=1):
        enrol(path, name, i, pub)
    return record_node_ids(path, dict(zip(NAMES, ids)))


def test_registry_round_trips_as_json_lines(tmp_path, keys):
    # Prepare
    path = tmp_path / "fleet" / "registry.jsonl"

    # Execute
    first = enrol(path, "gateway-1", 1, keys[0][1])
    second = enrol(path, "gateway-2", 2, keys[1][1])
    recorded = record_node_ids(path, {"gateway-2": 42})

    # Assert: one JSON object per line, the key without its comment, node ids once registered
    assert read_registry(path) == recorded == [first, Enrolment(**{**second.__dict__, "node_id": 42})]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["gateway-1", "gateway-2"]
    assert lines[0]["key"] == keys[0][1].read_text().strip() and lines[0]["node_id"] is None
    assert not list(path.parent.glob("*.tmp"))  # written by rename, no leftovers


@pytest.mark.parametrize("name, partition, key_index, what", [
    ("gateway-1", 9, 3, "name gateway-1"),
    ("gateway-9", 1, 3, "partition id 1"),
    ("gateway-9", 9, 0, "key SHA256:"),
])
def test_registry_refuses_a_duplicate_name_partition_or_key(tmp_path, keys, name, partition, key_index, what):
    # Prepare
    path = tmp_path / "registry.jsonl"
    enrol(path, "gateway-1", 1, keys[0][1])
    before = path.read_text()

    # Execute
    with pytest.raises(ConfigError) as refused:
        enrol(path, name, partition, keys[key_index][1])

    # Assert
    assert what in str(refused.value) and "already enrolled, as gateway-1 (partition 1)" in str(refused.value)
    assert path.read_text() == before


def test_enrol_command_prints_one_line_and_refuses_duplicates_with_exit_2(tmp_path, keys):
    # Prepare
    registry = tmp_path / "registry.jsonl"
    base = ["flower", "enrol", "--registry", str(registry)]

    # Execute
    done = runner.invoke(app, [*base, "--name", "gateway-1", "--partition-id", "1", "--key", str(keys[0][1])])
    again = runner.invoke(app, [*base, "--name", "gateway-2", "--partition-id", "2", "--key", str(keys[0][1])])

    # Assert
    assert done.exit_code == 0, done.output
    assert done.output.startswith("enrolled gateway-1 (partition 1, key SHA256:")
    assert "already enrolled" in _one_line_exit_2(again)
    assert [e.name for e in read_registry(registry)] == ["gateway-1"]


@pytest.mark.parametrize("args, expected", [
    (["--name", "a", "--partition-id", "1", "--key", "{private}"], "that is a private key: give the .pub file"),
    (["--name", "a", "--partition-id", "1", "--key", "{missing}"], "public key not found"),
    (["--name", "a", "--partition-id", "-1", "--key", "{public}"], "partition id -1"),
    (["--name", "it's", "--partition-id", "1", "--key", "{public}"], "no single quote"),
    (["--name", "a", "--partition-id", "1", "--key", "{garbage}"], "not an OpenSSH public key"),
])
def test_enrol_command_refuses_bad_input_in_one_line(tmp_path, keys, args, expected):
    # Prepare
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("ssh-rsa not-base64\n")
    files = {"private": keys[0][0], "public": keys[0][1], "missing": tmp_path / "nope.pub", "garbage": garbage}

    # Execute
    result = runner.invoke(app, ["flower", "enrol", "--registry", str(tmp_path / "r.jsonl"),
                                 *[a.format(**files) for a in args]])

    # Assert
    assert expected in _one_line_exit_2(result)
    assert not (tmp_path / "r.jsonl").exists()


def test_a_registry_edited_into_duplicates_is_refused_when_read(tmp_path, keys):
    # Prepare: two lines with one partition id, and a line that is not JSON
    path = tmp_path / "registry.jsonl"
    enrol(path, "gateway-1", 1, keys[0][1])
    line = json.loads(path.read_text())
    path.write_text(path.read_text() + json.dumps({**line, "name": "gateway-2", "key": keys[1][1].read_text()}) + "\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")

    # Execute / Assert
    with pytest.raises(ConfigError, match="partition id 1 is already enrolled"):
        read_registry(path)
    result = runner.invoke(app, ["flower", "nodes", "--registry", str(broken)])
    assert "broken.jsonl:1: not a registry line" in _one_line_exit_2(result)


def test_serverapp_without_a_registry_uses_the_grid_as_it_is(tmp_path, keys):
    grid = object()
    assert enrolled_grid(grid, environ={}) is grid
    with pytest.raises(ConfigError, match="no node registry there"):
        enrolled_grid(grid, environ={REGISTRY_ENV: str(tmp_path / "missing.jsonl")})
    path = tmp_path / "registry.jsonl"
    _enrolled(path, keys)
    assert isinstance(enrolled_grid(grid, environ={REGISTRY_ENV: str(path)}), EnrolledGrid)


def _run(fedmse_slice, tmp_path, registry, node_configs, rounds=2) -> list[dict]:
    """A run over the in-process grid behind the registry; its history. InProcessGrid numbers nodes 1, 2, ..."""
    config = FedCLConfig(data=str(fedmse_slice), rounds=rounds, seed=0)
    grid = EnrolledGrid(InProcessGrid(client_app, node_configs), read_registry(registry))
    run_server(grid, config, tmp_path / "run", min_nodes=2)
    return read_history(tmp_path / "run")


def _node(fedmse_slice, name, partition) -> dict:
    return {"data-path": str(fedmse_slice / name), "partition-id": partition}


def test_only_enrolled_nodes_take_part_under_their_enrolled_names(fedmse_slice, tmp_path, keys, caplog):
    # Prepare: Client-1 and Client-2 enrolled with node ids 1 and 2; node 3 (Client-3) connects without enrolment
    registry = tmp_path / "registry.jsonl"
    for i, name in enumerate(NAMES[:2], start=1):
        enrol(registry, name, i, keys[i - 1][1], node_id=i)
    nodes = [_node(fedmse_slice, name, i) for i, name in enumerate(NAMES, start=1)]

    # Execute
    with caplog.at_level("INFO", logger="flwr"):
        history = _run(fedmse_slice, tmp_path, registry, nodes)

    # Assert: node 3 got no work; the log ties Flower's node ids to the names
    assert [list(h["nodes"]) for h in history] == [["Client-1", "Client-2"]] * 2
    assert "node 1 is Client-1 (partition 1)" in caplog.text
    assert "node 3 is connected but not enrolled: it gets no work" in caplog.text


def test_a_node_claiming_another_name_or_partition_than_its_enrolment_is_dropped(fedmse_slice, tmp_path, keys, caplog):
    # Prepare: node 3 runs Client-3's data, but its key is enrolled as partition 4
    registry = tmp_path / "registry.jsonl"
    for i, name in enumerate(NAMES, start=1):
        enrol(registry, name, 4 if i == 3 else i, keys[i - 1][1], node_id=i)
    nodes = [_node(fedmse_slice, name, i) for i, name in enumerate(NAMES, start=1)]

    # Execute
    with caplog.at_level("WARNING", logger="flwr"):
        history = _run(fedmse_slice, tmp_path, registry, nodes, rounds=1)

    # Assert
    assert list(history[0]["nodes"]) == ["Client-1", "Client-2"]
    assert ("reply from node 3 dropped: it says Client-3 (partition 3), but its key is enrolled as Client-3 "
            "(partition 4)") in caplog.text


def _history(path) -> None:
    """A recorded history.jsonl: Client-3 set aside in round 2 and gone in round 3."""
    def node(excluded=None):
        return {"loss": 1.0, "distance": 0.1, "own_frame_distance": 0.1, "weight": 0.0 if excluded else 0.5,
                "excluded": excluded is not None, "reason": excluded}
    rounds = [{"Client-1": node(), "Client-2": node(), "Client-3": node()},
              {"Client-1": node(), "Client-2": node(), "Client-3": node(REASON)},
              {"Client-1": node(), "Client-2": node(), "Stranger": node()}]
    path.mkdir(parents=True, exist_ok=True)
    (path / HISTORY_FILE).write_text("".join(json.dumps({"round": r, "loss": 1.0, "nodes": nodes}) + "\n"
                                             for r, nodes in enumerate(rounds, start=1)))


def test_nodes_command_lists_names_last_round_and_exclusions_from_a_run_folder(tmp_path, keys):
    # Prepare
    registry, run = tmp_path / "registry.jsonl", tmp_path / "run"
    _enrolled(registry, keys)
    _history(run)

    # Execute
    table = runner.invoke(app, ["flower", "nodes", "--registry", str(registry), "--out", str(run)])
    as_json = runner.invoke(app, ["flower", "nodes", "--registry", str(registry), "--out", str(run), "--json"])

    # Assert
    assert table.exit_code == 0, table.output
    table_lines = table.output.split("\n\n")[0].splitlines()[2:]  # after the run line and the header
    rows = {line.split()[0]: line.split() for line in table_lines}
    assert rows["Client-1"][:4] == ["Client-1", "1", "1", "enrolled"] and rows["Client-1"][-2:] == ["3", "0"]
    assert rows["Client-3"][-2:] == ["2", "1"]
    assert rows["Stranger"][1:4] == ["-", "-", "not"]  # in the history, not in the registry
    assert f"Client-3  round 2: {REASON}" in table.output
    nodes = json.loads(as_json.output)["nodes"]
    assert [n["name"] for n in nodes] == ["Client-1", "Client-2", "Client-3", "Stranger"]
    assert nodes[2]["excluded"] == [{"round": 2, "reason": REASON}]


def test_fleet_view_takes_each_enrolled_nodes_status_from_the_superlink(tmp_path, keys):
    # Prepare: Client-1 online, Client-2 registered but never connected, Client-3's key unknown to the SuperLink,
    # and node 99 registered outside the registry
    entries = _enrolled(tmp_path / "registry.jsonl", keys, ids=(1, 2, 7))
    live = [{"node-id": "1", "status": "online", "online-at": "2026-11-30 16:40:01Z", "offline-at": "N/A"},
            {"node-id": "2", "status": "registered", "online-at": "N/A", "offline-at": "N/A"},
            {"node-id": "99", "status": "offline", "online-at": "N/A", "offline-at": "2026-11-30 16:41:00Z"}]

    # Execute
    rows = fleet_view(entries, [], live)

    # Assert
    assert [(r["name"], r["node_id"], r["status"], r["since"]) for r in rows] == [
        ("Client-1", 1, "online", "2026-11-30 16:40:01Z"), ("Client-2", 2, "registered", ""),
        ("Client-3", 7, "not registered", ""), ("-", 99, "offline (not enrolled)", "")]


def test_nodes_command_needs_a_registry_or_a_run_folder(tmp_path):
    assert "give --registry" in _one_line_exit_2(runner.invoke(app, ["flower", "nodes"]))
    result = runner.invoke(app, ["flower", "nodes", "--out", str(tmp_path)])
    assert "no history.jsonl" in _one_line_exit_2(result)


def test_superlink_refuses_a_missing_registry_and_a_registry_with_register(tmp_path, keys):
    base = ["flower", "superlink", "--insecure", "--registry"]
    missing = runner.invoke(app, [*base, str(tmp_path / "nope.jsonl")])
    assert "no node registry there" in _one_line_exit_2(missing)
    registry = tmp_path / "registry.jsonl"
    enrol(registry, "gateway-1", 1, keys[0][1])
    both = runner.invoke(app, [*base, str(registry), "--register", str(keys[1][1])])
    assert "not both" in _one_line_exit_2(both)
