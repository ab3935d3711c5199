"""A real Flower deployment on loopback: one SuperLink, SuperNodes over TLS with node authentication.

One federation (the `fedcl flower superlink --registry` wrapper: TLS, --enable-supernode-auth, three
enrolled SuperNodes) is shared by the module, because starting it costs ~20 s and every message
starts a ClientApp process that imports torch (~3.6 s). The tests run in file order: rejected nodes,
`fedcl flower run` with another federation's CA, a resume the ServerApp refuses, a 2-round run
evaluated by its nodes and end to end and listed by `fedcl flower nodes`, a node enrolled while the SuperLink runs,
a masked round (secure aggregation) and a node-level private run, then a 3-round run during which one SuperNode is SIGKILLed (the last test, since it removes a node).
Every process is stopped with its descendants, whatever happens.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from fedcl.federated.flower.certificates import Certificates, generate_certificates, generate_node_keys
from fedcl.federated.flower.commands import supernode_command
from fedcl.federated.flower.environment import base_env
from fedcl.federated.flower.flwr_cli import flwr_home_env, list_nodes, run_info, run_status, submit_run, wait_finished
from fedcl.federated.flower.health import wait_healthy
from fedcl.federated.flower.processes import start_process, stop_processes
from fedcl.federated.flower.registry import enrol, read_registry
from fedcl.federated.flower.run_dir import REFUSED

NODES = (1, 2, 3)  # partition ids, and the Client-<i> folders of the fedmse slice (the nodes' names)
FEDCL = str(Path(sys.executable).with_name("fedcl"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Federation:
    root: Path
    address: str
    certs: Certificates
    env: dict
    node_ids: list[int]
    stranger_ca: Path | None = None
    registry: Path | None = None
    superlink: object = None
    nodes: dict = field(default_factory=dict)      # partition id -> Popen
    rejected: dict = field(default_factory=dict)   # label -> (Popen, log path)
    procs: list = field(default_factory=list)      # everything started, for the teardown

    def start(self, argv: list[str], name: str):
        proc = start_process(argv, self.root / "logs" / f"{name}.log", self.env, cwd=self.root)
        self.procs.append(proc)
        return proc

    def wait_online(self, expected: set[int], timeout: float = 90.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            nodes = list_nodes(self.env)
            if {int(n["node-id"]) for n in nodes if n["status"] == "online"} == expected:
                return nodes
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes online: {nodes}")
            time.sleep(2)


@pytest.fixture(scope="module")
def federation(tmp_path_factory, fedmse_slice):
    root = tmp_path_factory.mktemp("flower-deploy")
    certs = generate_certificates(root / "certs")
    stranger_ca = generate_certificates(root / "stranger-certs").ca_cert  # another federation's CA
    keys = generate_node_keys(root / "keys", len(NODES) + 1)  # the last one is never enrolled
    registry = root / "registry.jsonl"
    for i, (_, pub) in zip(NODES, keys):
        enrol(registry, f"Client-{i}", i, pub)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = flwr_home_env(root / "flwr-home", address, certs.ca_cert)
    fed = Federation(root=root, address=address, certs=certs, env=env, node_ids=[], stranger_ca=stranger_ca,
                     registry=registry)
    try:
        # The wrapper registers the enrolled keys, records their node ids, and tells the ServerApps the registry.
        fed.superlink = fed.start([FEDCL, "flower", "superlink", "--certs", str(root / "certs"), "--host", "127.0.0.1",
                                   "--port", str(port), "--database", str(root / "state.db"), "--registry",
                                   str(registry)], "superlink")
        wait_healthy(address, certs.ca_cert, timeout=90, process=fed.superlink)
        deadline = time.monotonic() + 90  # a node that connects before its key is registered is refused for good
        while None in (ids := [e.node_id for e in read_registry(registry)]):
            assert fed.superlink.poll() is None and time.monotonic() < deadline, "enrolled keys not registered"
            time.sleep(0.5)
        fed.node_ids = ids

        def intruder(partition: int, **kwargs) -> list[str]:
            # Client-1's rows under a name of its own, Intruder-<partition>.
            data = shutil.copytree(fedmse_slice / "Client-1", root / "intruders" / f"Intruder-{partition}")
            return supernode_command(superlink=address, data_path=data, partition_id=partition, port=_free_port(),
                                     **kwargs)

        for i, (private, _) in zip(NODES, keys):  # through the `fedcl flower supernode` command
            fed.nodes[i] = fed.start([FEDCL, "flower", "supernode", "--data", str(fedmse_slice / f"Client-{i}"),
                                      "--superlink", address, "--partition-id", str(i),
                                      "--root-certificates", str(certs.ca_cert), "--auth-key", str(private),
                                      "--port", str(_free_port())], f"node-{i}")
        # Would-be intruders, each with data, a name and a partition id of its own (7, 8, 9), so
        # any work they did would show in the history: a registered key but another CA, the right
        # CA but an unregistered key, and the right CA with no key at all.
        for label, partition, kwargs in [
            ("wrong-ca", 9, {"root_certificates": stranger_ca, "private_key": keys[0][0]}),
            ("unregistered-key", 8, {"root_certificates": certs.ca_cert, "private_key": keys[-1][0]}),
            ("no-key", 7, {"root_certificates": certs.ca_cert}),
        ]:
            fed.rejected[label] = (fed.start(intruder(partition, **kwargs), label), root / "logs" / f"{label}.log")
        fed.wait_online(set(fed.node_ids))
        yield fed
    finally:
        stop_processes(fed.procs)


def test_nodes_without_the_ca_or_a_registered_key_are_rejected(federation):
    expected = {
        "wrong-ca": "CERTIFICATE_VERIFY_FAILED",           # TLS handshake refused by the node itself
        "unregistered-key": "[code: 2004] Failed to activate SuperNode",
        "no-key": "Failed to initialize the connection to the SuperLink",  # self-registration is off
    }
    for label, (proc, log) in federation.rejected.items():
        assert proc.wait(timeout=60) != 0, label  # TLS and auth failures are not retried: exits quickly
        assert expected[label] in log.read_text(errors="replace"), label
    nodes = federation.wait_online(set(federation.node_ids))
    assert {int(n["node-id"]) for n in nodes} == set(federation.node_ids)  # nobody else ever joined


def test_run_with_another_federations_ca_exits_2_in_one_line(federation):
    # Execute: flwr itself would say only "Connection to the SuperLink is unavailable"
    done = subprocess.run([FEDCL, "flower", "run", "--superlink", federation.address, "--root-certificates",
                           str(federation.stranger_ca), "--out", str(federation.root / "never"), "--wait"],
                          env=base_env(), capture_output=True, text=True, timeout=120)

    # Assert
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert len(output.strip().splitlines()) == 1 and "is not trusted with" in output, output
    assert not (federation.root / "never").exists()


def test_the_serverapp_refuses_to_resume_a_run_it_has_no_checkpoint_of(federation):
    # Prepare: submitted past fedcl's own check (which runs only where --out is visible)
    run_id = submit_run(federation.env, {"rounds": 1, "out-dir": str(federation.root / "no-such-run"),
                                         "resume": True, "min-nodes": 3})

    # Execute
    status = wait_finished(run_id, federation.env, timeout=180)

    # Assert: failed at once, and the run's status says why, marked as refused settings
    details = run_info(run_id, federation.env)["status-details"]
    assert status == "finished:failed"
    assert REFUSED in details and "no checkpoint.pt to resume from" in details


def test_tls_deployment_trains_and_the_model_detects_attacks(federation, fedmse_slice):
    out = federation.root / "run-2-rounds"
    started = time.monotonic()
    submitted = subprocess.run(
        [FEDCL, "flower", "run", "--superlink", federation.address, "--root-certificates",
         str(federation.certs.ca_cert), "--out", str(out), "--rounds", "2", "--min-nodes", "3",
         "--round-timeout", "300", "--seed", "0", "--compression-bits", "4", "--wait"],
        env=base_env(), capture_output=True, text=True, timeout=400)
    print(f"\n3 nodes x 2 rounds over TLS, 4-bit updates: {time.monotonic() - started:.1f} s from submission")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "finished:completed" in submitted.stdout
    assert (out / "model.pt").is_file()
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["round"] == 2
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [1, 2]
    # The three registered nodes, and only they, did the work; by name, in order. Under compression round 2
    # sends each node a delta to the model it kept in its SuperNode's state from round 1: it kept it.
    for record in history:
        assert list(record["nodes"]) == [f"Client-{i}" for i in NODES]

    # Each SuperNode evaluated the model on its own rows: the metrics `fedcl evaluate` computes with every row here
    assert "3 nodes evaluated, 0 not; pooled AUROC" in submitted.stdout
    fleet = json.loads((out / "fleet.json").read_text())
    from fedcl.pipeline import evaluate
    summary = evaluate(out, data=str(fedmse_slice))
    assert summary["pooled"]["auroc"] > 0.9
    assert list(fleet["nodes"]) == list(summary["nodes"]) == [f"Client-{i}" for i in NODES]
    for name, metrics in summary["nodes"].items():
        assert fleet["nodes"][name]["auroc"] == pytest.approx(metrics["auroc"], abs=1e-12)
        assert fleet["nodes"][name]["fpr"] == pytest.approx(metrics["fpr"], abs=1e-12)


def test_nodes_command_lists_the_enrolled_nodes_online_with_their_last_round(federation):
    # Execute: the run of the test above, the registry, and the SuperLink's own view
    done = subprocess.run([FEDCL, "flower", "nodes", "--registry", str(federation.registry), "--out",
                           str(federation.root / "run-2-rounds"), "--superlink", federation.address,
                           "--root-certificates", str(federation.certs.ca_cert), "--json"],
                          env=base_env(), capture_output=True, text=True, timeout=120)

    # Assert
    assert done.returncode == 0, done.stdout + done.stderr
    nodes = json.loads(done.stdout)["nodes"]
    assert [(n["name"], n["partition"], n["node_id"], n["status"], n["last_round"]) for n in nodes] == [
        (f"Client-{i}", i, node_id, "online", 2) for i, node_id in zip(NODES, federation.node_ids)]
    log = (federation.root / "logs" / "superlink.log").read_text(errors="replace")
    assert f"fedcl: {len(NODES)} enrolled node(s) of {federation.registry} registered" in log
    # The run's ServerApp read the registry (the SuperLink passed it on): its log ties node ids to enrolled names
    flwr = [str(Path(sys.executable).with_name("flwr"))]
    runs = json.loads(subprocess.run([*flwr, "ls", "fedcl", "--format", "json"], env=federation.env,
                                     capture_output=True, text=True, timeout=60).stdout)["runs"]
    (run_id,) = [r["run-id"] for r in runs if r["status"] == "finished:completed"]  # the 2-round run
    server_log = subprocess.run([*flwr, "log", str(run_id), "fedcl", "--show"], env=federation.env,
                                capture_output=True, text=True, timeout=60).stdout
    assert f"node {federation.node_ids[0]} is Client-1 (partition 1)" in server_log, server_log[-2000:]


def test_a_node_enrolled_while_the_superlink_runs_is_registered_at_once(federation):
    # Prepare: the key no node was enrolled with (the rejected intruder's, gone by now)
    public = federation.root / "keys" / f"node-{len(NODES) + 1}.pub"
    nodes = [FEDCL, "flower", "nodes", "--registry", str(federation.registry), "--superlink", federation.address,
             "--root-certificates", str(federation.certs.ca_cert), "--json"]

    # Execute
    done = subprocess.run([FEDCL, "flower", "enrol", "--registry", str(federation.registry), "--name", "Client-4",
                           "--partition-id", "4", "--key", str(public), "--superlink", federation.address,
                           "--root-certificates", str(federation.certs.ca_cert)],
                          env=base_env(), capture_output=True, text=True, timeout=120)
    listed = subprocess.run(nodes, env=base_env(), capture_output=True, text=True, timeout=120)

    # Assert: registered with the SuperLink, its node id recorded; it never connected
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered with the SuperLink" in done.stdout
    (new,) = [n for n in json.loads(listed.stdout)["nodes"] if n["name"] == "Client-4"]
    assert new["status"] == "registered" and new["node_id"] == read_registry(federation.registry)[-1].node_id


def _submit(federation, out: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([FEDCL, "flower", "run", "--superlink", federation.address, "--root-certificates",
                           str(federation.certs.ca_cert), "--out", str(out), "--min-nodes", "3", "--round-timeout",
                           "300", "--no-evaluate", "--wait", *flags],
                          env=base_env(), capture_output=True, text=True, timeout=400)


def test_a_masked_round_over_tls_equals_the_in_process_masked_round(federation, fedmse_slice, one_torch_thread):
    from fedcl.config import FedCLConfig
    from fedcl.federated import run_federation
    from fedcl.pipeline import load_splits, scaled_training_rows

    out = federation.root / "run-secure"
    # fedavg: 4 masked exchanges a round instead of dynamic's 9 (the in-process grid tests both rules)
    config = FedCLConfig(rounds=1, seed=5, aggregation="fedavg", secure_aggregation=True)

    submitted = _submit(federation, out, "--rounds", "1", "--seed", "5", "--aggregation", "fedavg",
                        "--secure-aggregation")

    assert submitted.returncode == 0 and "finished:completed" in submitted.stdout, submitted.stdout + submitted.stderr
    (record,) = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert list(record["nodes"]) == [f"Client-{i}" for i in NODES]
    plain = run_federation({s.name: scaled_training_rows(s) for s in load_splits(config.updated(data=str(fedmse_slice)))},
                           config)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    for a, b in zip(plain.arrays, saved["arrays"]):  # the masked sums over three SuperNodes unmask to the same θ
        np.testing.assert_allclose(b.numpy(), a, rtol=0, atol=1e-5)
    np.testing.assert_allclose(saved["reference"].numpy(), plain.reference, rtol=0, atol=1e-5)


def test_a_node_level_private_run_over_tls_records_only_the_epsilon_spent(federation):
    out = federation.root / "run-node-dp"

    submitted = _submit(federation, out, "--rounds", "1", "--aggregation", "fedavg", "--dp-level", "node",
                        "--dp-epsilon", "8", "--dp-sample-rate", "0.9")

    assert submitted.returncode == 0 and "finished:completed" in submitted.stdout, submitted.stdout + submitted.stderr
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [set(h) for h in history] == [{"round", "epsilon"}] and 0.99 * 8 <= history[-1]["epsilon"] <= 8
    assert (out / "model.pt").is_file()


def test_a_killed_supernode_does_not_stop_the_run(federation):
    out = federation.root / "run-node-killed"
    victim = NODES[-1]
    started = time.monotonic()
    # min-nodes 2: rounds go on with two nodes. Round 1 must hear from all three (healthy rounds take
    # ~15 s on an idle machine, ~50 s on a busy one: the round timeout); in round 2 the dead node gets
    # 3 x the time the two live ones took, at least the floor (Flower itself answers for it once its
    # heartbeats stop, within 60 s).
    run_id = submit_run(federation.env, {"rounds": 2, "out-dir": str(out), "min-nodes": 2,
                                         "round-timeout": 90.0, "timeout-floor": 15.0})
    # Kill the node once round 1 is saved: round 2 has just been sent to it.
    checkpoint = out / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while not checkpoint.is_file():
        assert time.monotonic() < deadline, "round 1 never finished"
        assert run_status(run_id, federation.env) in ("pending", "starting", "running")
        time.sleep(1)
    stop_processes([federation.nodes[victim]], sig=signal.SIGKILL)  # the node and its ClientApps
    killed_at = time.monotonic() - started

    status = wait_finished(run_id, federation.env, timeout=300)
    print(f"\n2 rounds, node {victim} SIGKILLed at {killed_at:.0f} s: {time.monotonic() - started:.1f} s")
    assert status == "finished:completed"
    assert torch.load(checkpoint, weights_only=True)["round"] == 2
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [1, 2]
    assert list(history[0]["nodes"]) == [f"Client-{i}" for i in NODES]
    assert f"Client-{victim}" not in history[-1]["nodes"]
    assert all(len(h["nodes"]) >= 2 for h in history)
