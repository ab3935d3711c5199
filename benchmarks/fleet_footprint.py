"""A fleet of SuperNodes on loopback, and what one node costs a gateway: memory and CPU per round.

    .venv/bin/python benchmarks/fleet_footprint.py [--nodes 10] [--rounds 3] [--no-warm]

Starts a SuperLink and ``--nodes`` SuperNodes with fedcl's wrappers (no TLS: loopback), each on a light
node folder (copies of the bundled fedmse-iid slices, 300-400 benign rows each), runs ``--rounds``
rounds, and samples one node's process tree (the ``fedcl flower supernode`` wrapper, flower-supernode,
its flower-superexec and each round's ClientApp) every 0.1 s with psutil: peak RSS of the whole tree
at once, and CPU seconds (the largest user + system time seen of every process; what a ClientApp
spends in its last 0.1 s is missed); and the tree's RSS when idle after the run. ``--no-warm`` starts
the SuperNodes without their warm workers. The last line reads
``fleet <n> nodes x <r> rounds: <seconds> s; one node: peak RSS <MB> MB, idle <MB> MB, CPU <seconds> s per round``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

from fedcl.federated.flower.environment import base_env
from fedcl.federated.flower.flwr_cli import flwr_home_env, list_nodes, submit_run, wait_finished
from fedcl.federated.flower.health import wait_healthy
from fedcl.federated.flower.processes import stop_processes

SLICES = Path(__file__).resolve().parents[1] / "tests" / "nbaiot" / "fedmse-iid"  # Client-1..3
FEDCL = str(Path(sys.executable).with_name("fedcl"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_folders(root: Path, n: int) -> list[Path]:
    """``n`` light node folders, Node-01.., copies of the bundled slices in turn."""
    slices = sorted(SLICES.iterdir())
    folders = [root / f"Node-{i:02d}" for i in range(1, n + 1)]
    for i, folder in enumerate(folders):
        shutil.copytree(slices[i % len(slices)], folder)
    return folders


@contextmanager
def loopback_fleet(root: Path, n: int, warm: bool = True):
    """A SuperLink and ``n`` SuperNodes (partition ids 1..n) on loopback; yields (flwr env, SuperNode Popens).

    Every process is stopped with its descendants on the way out, whatever happens.
    """
    procs: list[subprocess.Popen] = []
    env, address = base_env(), f"127.0.0.1:{free_port()}"
    try:
        procs.append(subprocess.Popen(
            [FEDCL, "flower", "superlink", "--insecure", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
             "--database", str(root / "state" / "superlink.db"), "--log-file", str(root / "logs" / "superlink.log")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_healthy(address, insecure=True, timeout=300, process=procs[0])
        flwr_env = flwr_home_env(root / "flwr-home", address, insecure=True)
        nodes = [subprocess.Popen(
            [FEDCL, "flower", "supernode", "--insecure", "--warm" if warm else "--no-warm", "--data", str(folder),
             "--partition-id", str(i),
             "--superlink", address, "--port", str(free_port()), "--log-file", str(root / "logs" / f"{folder.name}.log")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, folder in enumerate(node_folders(root / "data", n), start=1)]
        procs += nodes
        deadline = time.monotonic() + 300
        while sum(node["status"] == "online" for node in list_nodes(flwr_env)) < n:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the {n} SuperNodes did not all come online (logs: {root / 'logs'})")
            time.sleep(1)
        yield flwr_env, nodes
    finally:
        stop_processes(procs)


class TreeSampler(threading.Thread):
    """Samples a process tree every ``interval`` s: peak total RSS, and each process's largest CPU time."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.stopped = psutil.Process(pid), interval, threading.Event()
        self.peak_rss, self.cpu = 0, {}

    def run(self) -> None:
        while not self.stopped.is_set():
            rss = 0
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in tree:
                try:
                    with proc.oneshot():
                        rss += proc.memory_info().rss
                        times = proc.cpu_times()
                        self.cpu[(proc.pid, proc.create_time())] = times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            time.sleep(self.interval)

    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the fleet on the way out, as on Ctrl-C
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-warm", dest="warm", action="store_false", help="SuperNodes without warm workers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, loopback_fleet(Path(tmp), args.nodes, args.warm) as (flwr_env, nodes):
        sampler = TreeSampler(nodes[0].pid)
        sampler.start()
        started = time.monotonic()
        run_id = submit_run(flwr_env, {"rounds": args.rounds, "seed": 0, "out-dir": str(Path(tmp) / "run"),
                                       # half the fleet: a reply Flower loses costs a paced wait, not 600 s
                                       "min-nodes": max(1, args.nodes // 2), "round-timeout": 600.0,
                                       "evaluate": False})
        status = wait_finished(run_id, flwr_env, timeout=3600, poll=0.5)
        took = time.monotonic() - started
        sampler.stop()
        if status != "finished:completed":
            raise SystemExit(f"run {run_id}: {status}")
        time.sleep(5)  # the last ClientApp processes exit
        idle = tree_rss(nodes[0].pid)  # between runs: the worker (if any) warm, with the node's rows
    print(f"fleet {args.nodes} nodes x {args.rounds} rounds: {took:.1f} s; one node: peak RSS "
          f"{sampler.peak_rss / 2**20:.0f} MB, idle {idle / 2**20:.0f} MB, CPU "
          f"{sampler.cpu_seconds() / args.rounds:.1f} s per round")


if __name__ == "__main__":
    main()
