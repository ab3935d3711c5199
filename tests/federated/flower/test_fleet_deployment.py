"""Ten SuperNodes on loopback (light data): a run samples half of them each round and completes."""

from __future__ import annotations

import json

from fedcl.federated.flower.flwr_cli import submit_run, wait_finished
from fleet_footprint import loopback_fleet

NODES = 10


def test_a_ten_node_fleet_trains_a_seeded_half_each_round(tmp_path):
    with loopback_fleet(tmp_path, NODES) as (flwr_env, nodes):
        # Execute: min-nodes as a share of the fleet, half the nodes asked each round
        run_id = submit_run(flwr_env, {"rounds": 2, "seed": 0, "out-dir": str(tmp_path / "run"), "min-nodes": 0.5,
                                       "sample-fraction": 0.5, "round-timeout": 300.0, "evaluate": False,
                                       # no round cut short by pacing: on a loaded box a sampled node may take minutes
                                       "timeout-floor": 300.0,
                                       "min_rows_per_round": 0})
        status = wait_finished(run_id, flwr_env, timeout=600, poll=0.5)
        assert all(node.poll() is None for node in nodes)  # every SuperNode still serving

    # Assert: two rounds, five distinct nodes of the ten in each
    assert status == "finished:completed", (tmp_path / "logs" / "superlink.log").read_text()[-3000:]
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [1, 2]
    names = {f"Node-{i:02d}" for i in range(1, NODES + 1)}
    for record in history:
        assert len(record["nodes"]) == 5 and set(record["nodes"]) <= names
    assert (tmp_path / "run" / "model.pt").is_file()
