"""Fleet settings: a share of the fleet as min-nodes, per-round sampling, round timeouts from measured rounds."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest
from flwr.app import Message, MessageType, RecordDict

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.federated.flower import InProcessGrid, run_server
from fedcl.federated.flower.client_app import app
from fedcl.federated.flower.pacing import PacedGrid, check_pacing, resolve_min_nodes
from fedcl.federated.flower.registry import EnrolledGrid, Enrolment
from fedcl.federated.flower.strategy import FedCLStrategy

NAMES = ["Client-1", "Client-2", "Client-3"]


class Connected:
    """A grid with ``n`` connected nodes."""

    def __init__(self, n: int) -> None:
        self.n = n

    def get_node_ids(self):
        return list(range(1, self.n + 1))


def test_min_nodes_below_one_is_a_share_of_the_connected_nodes():
    assert resolve_min_nodes(0.5, Connected(5)) == 3
    assert resolve_min_nodes(0.2, Connected(10)) == 2  # exactly 2, not 3 by rounding error
    assert resolve_min_nodes(0.01, Connected(10)) == 1
    assert resolve_min_nodes(4, Connected(2)) == 4  # a count waits for that many nodes


def test_min_nodes_below_one_is_a_share_of_the_enrolled_nodes_under_a_registry():
    # Prepare: 4 nodes enrolled and registered with the SuperLink, one enrolled but not registered; 1 connected
    enrolments = [Enrolment(name=f"gw-{i}", partition=i, key=f"k{i}", node_id=i if i < 5 else None)
                  for i in range(1, 6)]
    grid = EnrolledGrid(Connected(1), enrolments)

    # Execute / Assert: the fleet is the registry's, not who happens to be connected at the start
    assert resolve_min_nodes(0.5, grid) == 2


@pytest.mark.parametrize("value, message", [(0, r"a share of the fleet in \(0, 1\)"), (1.5, "a whole number"),
                                            (-1, r"a share of the fleet in \(0, 1\)")])
def test_a_min_nodes_that_is_neither_a_count_nor_a_share_is_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        resolve_min_nodes(value, Connected(3))


def test_no_node_to_take_a_share_of_is_refused():
    with pytest.raises(ConfigError, match="no node is connected"):
        resolve_min_nodes(0.5, Connected(0))


def test_each_round_trains_a_seeded_share_of_the_nodes(fedmse_slice, tmp_path, one_torch_thread):
    # Prepare
    nodes = [{"data-path": str(fedmse_slice / n), "partition-id": i} for i, n in enumerate(NAMES, start=1)]

    def trained(seed: int, out: str) -> list[list[str]]:
        run_server(InProcessGrid(app, nodes), FedCLConfig(rounds=4, seed=seed), tmp_path / out, min_nodes=1,
                   sample_fraction=0.5, evaluate=False)
        history = [json.loads(line) for line in (tmp_path / out / "history.jsonl").read_text().splitlines()]
        return [list(h["nodes"]) for h in history]

    # Execute
    first, again, other_seed = trained(0, "a"), trained(0, "b"), trained(1, "c")

    # Assert: ⌈0.5 × 3⌉ = 2 nodes a round, the same ones for the same seed, not always the same two
    assert all(len(round_) == 2 for round_ in first)
    assert first == again
    assert len({tuple(r) for r in first + other_seed}) > 1


def test_sampling_keeps_flowers_64_bit_node_ids_exact():
    # Prepare: deployed node ids are unsigned 64-bit, above and below 2**63 in one fleet
    ids = [17, 2**63 + 5, 2**64 - 1, 2**62 + 3]
    messages = [Message(RecordDict(), dst_node_id=i, message_type=MessageType.TRAIN) for i in ids]
    strategy = FedCLStrategy(FedCLConfig(), sample_fraction=0.5, min_train_nodes=1)

    # Execute
    kept = strategy._sampled(messages, server_round=1)

    # Assert: two of the four messages, untouched
    assert len(kept) == 2 and all(m in messages for m in kept)


@pytest.mark.parametrize("fraction", [0, 1.5])
def test_a_sample_fraction_outside_zero_to_one_is_refused(fedmse_slice, tmp_path, fraction):
    nodes = [{"data-path": str(fedmse_slice / n), "partition-id": i} for i, n in enumerate(NAMES, start=1)]
    with pytest.raises(ConfigError, match="sample-fraction"):
        run_server(InProcessGrid(app, nodes), FedCLConfig(rounds=1), tmp_path / "run", sample_fraction=fraction)
    assert not (tmp_path / "run").exists()  # refused before anything is written


class Nodes:
    """A grid whose i-th message is answered ``delays[i]`` seconds after the push (None: never)."""

    def __init__(self, *delays: float | None) -> None:
        self.delays, self.pushed_at = delays, 0.0

    def push_messages(self, messages):
        self.pushed_at = time.monotonic()
        return [f"m{i}" for i, _ in enumerate(messages)]

    def pull_messages(self, ids):
        now = time.monotonic() - self.pushed_at
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i)) for i in ids
                if self.delays[int(i[1:])] is not None and self.delays[int(i[1:])] <= now]


def _messages(n: int, kind: str = MessageType.TRAIN) -> list[Message]:
    return [Message(RecordDict(), dst_node_id=i, message_type=kind) for i in range(1, n + 1)]


def _timed(grid: PacedGrid, messages: list[Message], timeout: float | None = None) -> tuple[int, float]:
    started = time.monotonic()
    replies = grid.send_and_receive(messages, timeout=timeout)
    return len(replies), time.monotonic() - started


def test_later_rounds_wait_a_multiple_of_the_slowest_complete_round_within_floor_and_ceiling():
    # Prepare
    grid = PacedGrid(Nodes(0.05, 0.1, 0.05), ceiling=600, multiple=3, floor=0.01, poll=0.01)
    assert grid.timeout == 600  # nothing measured yet

    # Execute: a complete round
    answered, took = _timed(grid, _messages(3))

    # Assert: it ended with the last reply; the next round starts with 3 × its length as deadline
    assert answered == 3 and took < 30
    assert grid.timeout == pytest.approx(3 * grid.slowest) and 0.3 <= grid.timeout < 90
    floored = PacedGrid(Nodes(0.0), ceiling=600, multiple=3, floor=60, poll=0.01)
    floored.send_and_receive(_messages(1))
    assert floored.timeout == 60


def test_a_node_that_never_answers_costs_the_first_round_a_multiple_of_the_others_not_the_ceiling(caplog):
    # Prepare: two nodes answer at once, the third never (a lost reply)
    grid = PacedGrid(Nodes(0.02, None, 0.02), ceiling=600, multiple=3, floor=0.3, poll=0.01)

    # Execute
    with caplog.at_level(logging.WARNING, logger="flwr"):
        answered, took = _timed(grid, _messages(3))

    # Assert: the round ends at the floor (3 × the half-answered time is less), logged, and sets no pace
    assert answered == 2 and 0.3 <= took < 30
    assert grid.slowest is None and grid.timeout == 600
    assert "2 of 3 nodes answered within 0.3 s" in caplog.text


def test_an_evaluation_gives_the_slow_nodes_a_multiple_of_what_half_took():
    grid = PacedGrid(Nodes(0.0, None), ceiling=600, multiple=3, floor=0.3, poll=0.01)
    answered, took = _timed(grid, _messages(2, MessageType.EVALUATE), timeout=600)
    assert answered == 1 and 0.3 <= took < 30  # the floor, not the 600 s it was given


def test_the_rest_are_not_cut_short_before_min_nodes_answered():
    # Prepare: 4 nodes, two answer at once, a third after 0.5 s; min-nodes 3
    grid = PacedGrid(Nodes(0.0, 0.0, 0.5, None), ceiling=600, multiple=3, floor=0.01, poll=0.01, min_replies=3)

    # Execute
    answered, took = _timed(grid, _messages(4))

    # Assert: half answered at once, but the round waited for the third (then 3 × its time for the fourth)
    assert answered == 3 and 1.5 <= took < 30


def test_secure_aggregation_steps_wait_the_timeout_they_are_given():
    grid = PacedGrid(Nodes(0.0, None), ceiling=600, multiple=3, floor=0.01, poll=0.01)
    answered, took = _timed(grid, _messages(2, "query.secagg_mask"), timeout=0.3)
    assert answered == 1 and 0.3 <= took < 30


@pytest.mark.parametrize("settings, message", [
    (dict(round_timeout=0), "round-timeout 0"), (dict(multiple=0.5), "timeout-multiple 0.5"),
    (dict(floor=0), "timeout-floor 0"), (dict(sample_fraction=0), "sample-fraction 0")])
def test_fleet_settings_no_run_can_use_are_refused_in_one_line(settings, message):
    values = dict(round_timeout=600, multiple=3, floor=60, sample_fraction=1.0) | settings
    with pytest.raises(ConfigError, match=message):
        check_pacing(**values)
