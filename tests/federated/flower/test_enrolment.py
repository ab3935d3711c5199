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
from fedcl.federated.flower import flwr_cli, health
from fedcl.federated.flower.flwr_cli import FlwrError
from fedcl.federated.flower.registry import (REGISTRY_ENV, EnrolledGrid, Enrolment, enrol, enrolled_grid, fleet_view,
                                             read_registry, record_node_ids, register_enrolled)
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
    assert rows["Client-3"][-2:] == ["1", "1"]  # set aside in round 2: round 1 was its last aggregated
    assert rows["Stranger"][1:4] == ["-", "-", "not"]  # in the history, not in the registry
    assert f"Client-3  round 2: {REASON}" in table.output
    nodes = json.loads(as_json.output)["nodes"]
    assert [n["name"] for n in nodes] == ["Client-1", "Client-2", "Client-3", "Stranger"]
    assert nodes[2]["excluded"] == [{"round": 2, "reason": REASON}]


def test_nodes_command_shows_what_each_node_reported_of_its_own_evaluation(tmp_path, keys):
    # Prepare: the run's fleet.json holds Client-1's and Client-2's evaluation; Client-3 did not answer
    registry, run = tmp_path / "registry.jsonl", tmp_path / "run"
    _enrolled(registry, keys)
    _history(run)
    (run / "fleet.json").write_text(json.dumps({"nodes": {"Client-1": {"auroc": 0.99871, "fpr": 0.01},
                                                          "Client-2": {"auroc": None, "fpr": 0.02}}}))

    # Execute
    table = runner.invoke(app, ["flower", "nodes", "--registry", str(registry), "--out", str(run)])
    as_json = runner.invoke(app, ["flower", "nodes", "--registry", str(registry), "--out", str(run), "--json"])

    # Assert
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line.split() for line in table.output.split("\n\n")[0].splitlines()[1:]}
    assert rows["NAME"][-2:] == ["AUROC", "FPR"]
    assert rows["Client-1"][-2:] == ["0.9987", "0.0100"] and rows["Client-2"][-2:] == ["-", "0.0200"]
    assert rows["Client-3"][-2:] == ["-", "-"]
    nodes = {n["name"]: n for n in json.loads(as_json.output)["nodes"]}
    assert nodes["Client-1"]["auroc"] == 0.99871 and nodes["Client-3"]["auroc"] is None


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


def test_last_round_counts_only_rounds_that_aggregated_the_node(tmp_path):
    # Prepare: Client-3 replied in rounds 1 and 2 but was set aside in round 2; Lonely only ever set aside
    run = tmp_path / "run"
    _history(run)
    history = read_history(run)
    history[0]["nodes"]["Lonely"] = {**history[1]["nodes"]["Client-3"]}

    # Execute
    rows = {r["name"]: r for r in fleet_view(None, history)}

    # Assert
    assert (rows["Client-1"]["last_round"], rows["Client-3"]["last_round"], rows["Lonely"]["last_round"]) == (3, 1, None)
    assert [x["round"] for x in rows["Lonely"]["excluded"]] == [1]


def _line(path, number) -> dict:
    return json.loads(path.read_text().splitlines()[number - 1])


def _rewrite(path, number, **fields) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = json.dumps({**json.loads(lines[number - 1]), **fields})
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bad_key, expected", [
    ("{ed25519}", "Flower accepts only ECDSA keys on a NIST curve"),
    ("{rsa}", "Flower accepts only ECDSA keys on a NIST curve"),
    ("{stray}", "not an OpenSSH public key"),  # a character base64 forbids, which lax decoding would skip
    ("ecdsa-sha2-nistp384", "not an OpenSSH public key"),
])
def test_a_registry_key_edited_by_hand_gets_the_check_enrol_makes(tmp_path, keys, bad_key, expected):
    # Prepare
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    def openssh(private) -> str:
        return private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                 serialization.PublicFormat.OpenSSH).decode()
    path = tmp_path / "registry.jsonl"
    enrol(path, "gateway-1", 1, keys[0][1])
    enrol(path, "gateway-2", 2, keys[1][1])
    kind, blob = _line(path, 2)["key"].split()
    _rewrite(path, 2, key=bad_key.format(rsa=openssh(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
                                         ed25519=openssh(ed25519.Ed25519PrivateKey.generate()), stray=f"{kind} {blob[:20]}!{blob[20:]}"))

    # Execute
    with pytest.raises(ConfigError) as refused:
        read_registry(path)
    result = runner.invoke(app, ["flower", "nodes", "--registry", str(path)])

    # Assert
    assert f"registry.jsonl:2: the key of gateway-2: {expected}" in str(refused.value)
    assert expected in _one_line_exit_2(result)


def test_node_ids_are_unique_in_the_registry(tmp_path, keys):
    # Prepare
    path = tmp_path / "registry.jsonl"
    _enrolled(path, keys, ids=(1, 2, 3))
    before = path.read_text()

    # Execute / Assert: recording an id another node holds writes nothing; a hand edit is refused when read
    with pytest.raises(ConfigError, match="node id 1 is already enrolled, as Client-1"):
        record_node_ids(path, {"Client-2": 1})
    assert path.read_text() == before
    with pytest.raises(ConfigError, match="node id 2 is already enrolled"):
        enrol(path, "Client-4", 4, keys[3][1], node_id=2)
    _rewrite(path, 3, node_id=2)
    with pytest.raises(ConfigError, match="node id 2 is already enrolled, as Client-2"):
        read_registry(path)


def test_a_binary_registry_is_one_line_and_exit_2(tmp_path, keys):
    # Prepare
    binary = tmp_path / "registry.jsonl"
    binary.write_bytes(bytes(range(128, 256)))

    # Execute
    listed = runner.invoke(app, ["flower", "nodes", "--registry", str(binary)])
    enrolled = runner.invoke(app, ["flower", "enrol", "--registry", str(binary), "--name", "a", "--partition-id", "1",
                                   "--key", str(keys[0][1])])

    # Assert
    assert "not a node registry (not UTF-8 text)" in _one_line_exit_2(listed)
    assert "not UTF-8 text" in _one_line_exit_2(enrolled)
    assert binary.read_bytes() == bytes(range(128, 256))


def test_every_entry_point_finds_the_registry_by_the_same_path(tmp_path, keys, monkeypatch):
    # Prepare: HOME and the working directory elsewhere; the registry named with ~ and relatively
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    base = ["flower", "enrol", "--registry", "~/fleet/registry.jsonl"]

    # Execute
    done = runner.invoke(app, [*base, "--name", "gateway-1", "--partition-id", "1", "--key", str(keys[0][1])])
    listed = runner.invoke(app, ["flower", "nodes", "--registry", "~/fleet/registry.jsonl", "--json"])
    record_node_ids("fleet/registry.jsonl", {"gateway-1": 5})
    grid = enrolled_grid(object(), environ={REGISTRY_ENV: "~/fleet/registry.jsonl"})

    # Assert
    assert done.exit_code == 0, done.output
    assert f"in {tmp_path / 'fleet' / 'registry.jsonl'}" in done.output and not (tmp_path / "~").exists()
    assert [n["name"] for n in json.loads(listed.output)["nodes"]] == ["gateway-1"]
    assert isinstance(grid, EnrolledGrid) and read_registry(tmp_path / "fleet" / "registry.jsonl")[0].node_id == 5


class _FakeSuperLink:
    """Stands in for `flwr supernode register` / `ls`: held keys answer "already in use", others get new ids."""

    def __init__(self, held=(), nodes=(), next_id=100, unlistable=False):
        self.held, self.nodes, self.next_id, self.unlistable = set(held), dict(nodes), next_id, unlistable

    def register(self, public_keys, env, connection="fedcl", exist_ok=False):
        (path,) = public_keys
        key = open(path).read().strip()
        if key in self.held:
            return [None]
        self.held.add(key)
        self.nodes[self.next_id] = "registered"
        self.next_id += 1
        return [self.next_id - 1]

    def ls(self, env, connection="fedcl"):
        if self.unlistable:
            raise FlwrError("`flwr supernode` failed: unreachable")
        return [{"node-id": str(i), "status": status} for i, status in self.nodes.items()]


def _fake(monkeypatch, link) -> _FakeSuperLink:
    monkeypatch.setattr(flwr_cli, "register_supernodes", link.register)
    monkeypatch.setattr(flwr_cli, "list_nodes", link.ls)
    return link


def test_registering_with_a_reused_database_checks_kept_node_ids_and_names_keys_outside_the_registry(
        tmp_path, keys, monkeypatch):
    # Prepare: the database holds Client-1 (node 1, as the registry says), Client-2 (the registry says 2, the
    # SuperLink has no node 2), Client-3 (held before it was enrolled: no node id), node 99 (outside the registry)
    # and node 98 (unregistered). Client-4 is new.
    path = tmp_path / "registry.jsonl"
    _enrolled(path, keys, ids=(1, 2))  # Client-3 keeps node_id null
    enrol(path, "Client-4", 4, keys[3][1])
    held = [e.key for e in read_registry(path)[:3]]
    link = _fake(monkeypatch, _FakeSuperLink(held, {1: "online", 3: "offline", 99: "online", 98: "unregistered"}))

    # Execute
    found = register_enrolled(path, env={})
    notes = found.notes()

    # Assert
    assert [e.node_id for e in read_registry(path)] == [1, 2, None, 100]
    assert sorted(found.problems) == ["Client-2", "Client-3"]
    assert "the SuperLink has no node 2" in found.problems["Client-2"]
    assert "node id is unknown" in found.problems["Client-3"]
    assert found.outsiders == (3, 99)  # 3 is not the registry's: Client-3's node id is unknown
    assert any(line.startswith("WARNING: node 99 is registered with the SuperLink but not enrolled") and
               "`flwr supernode unregister 99 fedcl`" in line for line in notes)
    assert not any("node 98" in line for line in notes)

    # Execute / Assert: when the node list cannot be read, the kept ids are not called wrong, and a note says why
    link.unlistable = True
    unchecked = register_enrolled(path, env={})
    assert list(unchecked.problems) == ["Client-3"] and unchecked.outsiders == ()
    assert "cannot list the SuperLink's nodes" in unchecked.notes()[-1]


def test_enrol_with_a_superlink_that_fails_to_register_says_the_node_is_enrolled(tmp_path, keys, monkeypatch):
    # Prepare: a SuperLink that answers the probe, then refuses the registration
    def refuse(public_keys, env, connection="fedcl", exist_ok=False):
        raise FlwrError("`flwr supernode` failed: refused")

    monkeypatch.setattr(health, "probe_superlink", lambda *args, **kwargs: None)
    monkeypatch.setattr(flwr_cli, "register_supernodes", refuse)
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here\n")
    registry = tmp_path / "registry.jsonl"
    args = ["flower", "enrol", "--registry", str(registry), "--name", "gateway-1", "--partition-id", "1", "--key",
            str(keys[0][1]), "--superlink", "127.0.0.1:9", "--root-certificates", str(ca)]

    # Execute
    result = runner.invoke(app, args)

    # Assert: exit 2, one line that says it IS enrolled and when it will be registered
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 2  # enrolled; the error
    line = result.output.strip().splitlines()[-1]
    assert "gateway-1 is enrolled in" in line and "do not enrol it again" in line and "refused" in line
    assert "next starts" in line
    assert [(e.name, e.node_id) for e in read_registry(registry)] == [("gateway-1", None)]
