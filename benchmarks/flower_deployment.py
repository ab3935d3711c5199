"""A real Flower deployment on loopback, timed: a SuperLink and 3 SuperNodes, TLS and node authentication.

    .venv/bin/python benchmarks/flower_deployment.py [--data PATH] [--rounds N] [--keep DIR]

Started as an operator starts it, with fedcl's wrappers (``fedcl flower superlink`` with ``--register``,
``fedcl flower supernode`` per node), and submitted with fedcl's ``flwr`` helpers. The time runs from
submission to ``finished:completed``. The same run driven in-process (the same ClientApp and ServerApp,
no servers) gives what the rounds cost without processes, polling and TLS: the difference, per round,
is the deployment's overhead. The last line reads
``deployment 3 nodes x 3 rounds: <seconds> s, overhead per round <seconds> s``.
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedcl.config import FedCLConfig
from fedcl.federated.flower import run_inprocess
from fedcl.federated.flower.certificates import generate_certificates, generate_node_keys
from fedcl.federated.flower.environment import base_env
from fedcl.federated.flower.flwr_cli import flwr_home_env, list_nodes, submit_run, wait_finished
from fedcl.federated.flower.health import wait_healthy
from fedcl.federated.flower.processes import stop_processes

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "nbaiot" / "fedmse-iid"  # 3 light clients
FEDCL = str(Path(sys.executable).with_name("fedcl"))
NODES = (1, 2, 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_nodes(env: dict, n: int, statuses: tuple[str, ...], timeout: float = 300.0) -> None:
    """Until ``n`` SuperNodes show one of ``statuses`` in ``flwr supernode ls``."""
    deadline = time.monotonic() + timeout
    while sum(node["status"] in statuses for node in list_nodes(env)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} SuperNodes {'/'.join(statuses)} after {timeout:.0f} s")
        time.sleep(1)


def start_federation(root: Path, data: Path, procs: list[subprocess.Popen]) -> dict:
    """SuperLink (TLS, node authentication) and one SuperNode per node, through the fedcl wrappers.

    Every process started is appended to ``procs`` at once (for the caller to stop, whatever happens);
    returns the ``flwr`` environment for this SuperLink.
    """
    certs = generate_certificates(root / "pki")
    keys = generate_node_keys(root / "pki" / "nodes", len(NODES))
    address = f"127.0.0.1:{_free_port()}"
    env = base_env()
    link = subprocess.Popen([FEDCL, "flower", "superlink", "--certs", str(root / "pki"), "--host", "127.0.0.1",
                             "--port", address.rsplit(":", 1)[1], "--database", str(root / "state" / "superlink.db"),
                             "--log-file", str(root / "logs" / "superlink.log"),
                             *[arg for _, pub in keys for arg in ("--register", str(pub))]],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(link)
    started = time.monotonic()
    wait_healthy(address, certs.ca_cert, timeout=300, process=link)
    print(f"SuperLink healthy after {time.monotonic() - started:.1f} s")
    flwr_env = flwr_home_env(root / "flwr-home", address, certs.ca_cert)
    # A node whose key is not registered yet is refused for good: start nodes once the wrapper registered all.
    _wait_nodes(flwr_env, len(NODES), ("registered", "online"))
    for i, (private, _) in zip(NODES, keys):
        procs.append(subprocess.Popen(
            [FEDCL, "flower", "supernode", "--data", str(data / f"Client-{i}"), "--partition-id", str(i),
             "--superlink", address, "--root-certificates", str(certs.ca_cert), "--auth-key", str(private),
             "--port", str(_free_port()), "--log-file", str(root / "logs" / f"node-{i}.log")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    _wait_nodes(flwr_env, len(NODES), ("online",))
    print(f"{len(NODES)} SuperNodes online after {time.monotonic() - started:.1f} s")
    return flwr_env


def deployed_run(flwr_env: dict, out: Path, rounds: int) -> float:
    """Seconds from submission to ``finished:completed``."""
    started = time.monotonic()
    run_id = submit_run(flwr_env, {"rounds": rounds, "seed": 0, "out-dir": str(out), "min-nodes": len(NODES),
                                   "round-timeout": 600.0, "evaluate": False})  # the rounds only
    status = wait_finished(run_id, flwr_env, timeout=3600, poll=0.5)
    if status != "finished:completed":
        raise RuntimeError(f"run {run_id}: {status} (see {out.parent / 'logs'})")
    return time.monotonic() - started


def inprocess_run(data: Path, out: Path, rounds: int) -> float:
    """Seconds for the same run with the same apps in this process (rows read and modules imported once)."""
    nodes = [{"data-path": str(data / f"Client-{i}"), "partition-id": i} for i in NODES]
    logging.getLogger("flwr").setLevel(logging.WARNING)
    started = time.monotonic()
    run_inprocess(FedCLConfig(rounds=rounds, seed=0), nodes, out, evaluate=False)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with Client-1..3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and run folders here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = (args.keep or Path(tmp)).resolve()
        procs: list[subprocess.Popen] = []
        try:
            flwr_env = start_federation(root, args.data.resolve(), procs)
            deployed = deployed_run(flwr_env, root / "run-deployed", args.rounds)
        finally:
            stop_processes(procs)  # SIGTERM to the wrappers, which stop their trees
        local = inprocess_run(args.data.resolve(), root / "run-inprocess", args.rounds)
    print(f"in-process, same apps: {local:.1f} s ({local / args.rounds:.1f} s per round)")
    print(f"deployment {len(NODES)} nodes x {args.rounds} rounds: {deployed:.1f} s, "
          f"overhead per round {(deployed - local) / args.rounds:.1f} s")


if __name__ == "__main__":
    main()
