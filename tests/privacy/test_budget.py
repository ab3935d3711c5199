"""A node's own privacy budget: what it reserves, what it refuses, and that a Flower server cannot talk it
into more."""

import json
import math

import pytest
from flwr.app import Context, Error, Message, RecordDict
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError, InputError
from fedcl.federated.flower import InProcessGrid, run_server
from fedcl.federated.flower._records import config_record
from fedcl.federated.flower.client_app import app as client_app
from fedcl.federated.flower.client_app import evaluate
from fedcl.federated.flower.commands import node_config
from fedcl.privacy.budget import BudgetRefused, PrivacyLedger, node_ledger

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRIVATE = FedCLConfig(rounds=2, dp_epsilon=4.0, batch_size=64, hidden=8, embedding_dim=4, seed=1,
                      personalisation="off")


def test_a_run_reserves_its_epsilon_once_and_trains_each_planned_round_once(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", 6.0)

    ledger.charge(7, PRIVATE, 1, 300)
    ledger.charge(7, PRIVATE, 2, 300)

    assert ledger.spent() == 4.0
    with pytest.raises(BudgetRefused, match="round 2 again"):
        ledger.charge(7, PRIVATE, 2, 300)
    with pytest.raises(BudgetRefused, match="round 3 of a plan of 2 rounds"):
        ledger.charge(7, PRIVATE, 3, 300)
    with pytest.raises(BudgetRefused, match="changed its DP settings mid-run \\(batch_size, dp_epsilon\\)"):
        ledger.charge(7, PRIVATE.updated(dp_epsilon=1.0, batch_size=8), 2, 300)
    # other split settings or another seed give the node another number of rows, so another sampling rate
    with pytest.raises(BudgetRefused, match="changed its DP settings mid-run \\(n_rows\\)"):
        ledger.charge(7, PRIVATE.updated(val_fraction=0.5), 2, 64)
    assert PrivacyLedger(tmp_path / "ledger.jsonl", 6.0).spent() == 4.0  # read back from the file


def test_runs_of_tiny_epsilon_cannot_pile_up_delta(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", 6.0, max_delta=2e-5)
    tiny = PRIVATE.updated(dp_epsilon=0.01)  # 1e-5 each
    ledger.charge(1, tiny, 1, 300)
    ledger.charge(2, tiny, 1, 300)

    with pytest.raises(BudgetRefused, match="asks for δ = 1e-05, more than this node's budget has left"):
        ledger.charge(3, tiny, 1, 300)


def test_a_run_that_would_overspend_is_refused_and_charged_nothing(tmp_path):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", 6.0)
    ledger.charge(1, PRIVATE, 1, 300)
    lines = (tmp_path / "ledger.jsonl").read_text()

    with pytest.raises(BudgetRefused, match="asks for ε = 4, more than this node's budget has left") as refused:
        ledger.charge(2, PRIVATE, 1, 300)
    ledger.charge(3, PRIVATE.updated(dp_epsilon=2.0), 1, 300)  # what is left still fits

    assert (tmp_path / "ledger.jsonl").read_text().startswith(lines) and ledger.spent() == 6.0
    # the refusal goes back to the server: why, not what the node has left or where it keeps its ledger
    assert str(refused.value) == "run 2 asks for ε = 4, more than this node's budget has left"


@pytest.mark.parametrize(("config", "message"), [
    (PRIVATE.updated(dp_epsilon=math.inf), "asks for no differential privacy"),
    (PRIVATE.updated(dp_level="node", aggregation="fedavg"), "asks for node-level DP"),
    (PRIVATE.updated(dp_delta=0.9), "asks for δ = 0.9, more than this node's budget has left"),
])
def test_runs_without_record_level_dp_or_with_a_large_delta_are_refused(tmp_path, config, message):
    ledger = PrivacyLedger(tmp_path / "ledger.jsonl", 6.0)

    with pytest.raises(BudgetRefused, match=message):
        ledger.charge(1, config, 1, 300)
    assert ledger.spent() == 0.0


@pytest.mark.parametrize("line", ["not json", "[]", "1", '{"run": 1, "plan": {}}', '{"round": 2}'])
def test_a_ledger_line_that_is_not_an_entry_stops_the_node_in_one_line(tmp_path, line):
    (tmp_path / "bad.jsonl").write_text('{"run": 1, "plan": {"dp_epsilon": 1.0}}\n' + line + "\n")

    with pytest.raises(InputError, match="not a privacy ledger \\(line 2\\)"):
        PrivacyLedger(tmp_path / "bad.jsonl", 6.0).charge(2, PRIVATE, 1, 300)


def test_bad_budgets_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="positive and finite"):
        PrivacyLedger(tmp_path / "l.jsonl", math.inf)
    with pytest.raises(InputError, match="no privacy-ledger"):
        node_ledger({"max-epsilon": 4.0})
    with pytest.raises(InputError, match="no max-epsilon"):  # half a budget is not silently none
        node_ledger({"privacy-ledger": str(tmp_path / "l.jsonl"), "max-delta": 1e-6})
    with pytest.raises(InputError, match="must be numbers"):
        node_ledger({"max-epsilon": "lots", "privacy-ledger": str(tmp_path / "l.jsonl")})
    (tmp_path / "a-folder").mkdir()
    with pytest.raises(InputError, match="cannot keep the privacy ledger"):
        PrivacyLedger(tmp_path / "a-folder", 4.0).spent()
    assert node_ledger({"data-path": "x"}) is None
    assert node_ledger({"max-epsilon": 4, "max-delta": 1e-7, "privacy-ledger": "l"}).max_delta == 1e-7


def test_node_config_carries_the_budget_as_flower_parses_it_and_wants_both_halves(tmp_path):
    from flwr.common.config import parse_config_args

    text = node_config(tmp_path, 3, max_epsilon=4, privacy_ledger=tmp_path / "l.jsonl", max_delta=1e-6)

    ledger = node_ledger(parse_config_args([text]))
    assert (ledger.max_epsilon, ledger.max_delta, ledger.path) == (4.0, 1e-6, tmp_path / "l.jsonl")
    with pytest.raises(ConfigError, match="--max-epsilon with --privacy-ledger"):
        node_config(tmp_path, 3, max_epsilon=4)
    with pytest.raises(ConfigError, match="positive, finite"):
        node_config(tmp_path, 3, max_epsilon=-1, privacy_ledger=tmp_path / "l.jsonl")


def test_supernode_refuses_half_a_budget_in_one_line_before_starting_anything(fedmse_slice):
    result = CliRunner().invoke(app, ["flower", "supernode", "--data", str(fedmse_slice / "Client-1"),
                                      "--superlink", "127.0.0.1:9092", "--partition-id", "1", "--insecure",
                                      "--max-epsilon", "4"])

    assert result.exit_code == 2 and "--max-epsilon with --privacy-ledger" in result.output
    assert len(result.output.strip().splitlines()) == 1


class NodeGrid(InProcessGrid):
    """The in-process grid under one run id, a node's exception coming back as an error reply, as a SuperNode's."""

    def __init__(self, nodes, run_id: int) -> None:
        super().__init__(client_app, nodes)
        for context in self._contexts.values():
            context.run_id = run_id

    def push_messages(self, messages):
        ids = []
        for message in messages:
            try:
                ids += super().push_messages([message])
            except InputError as refused:
                ids.append(message.metadata.message_id)
                self._replies[ids[-1]] = Message(Error(code=0, reason=str(refused)), reply_to=message)
        return ids


def test_a_flower_server_cannot_make_a_node_spend_past_its_budget(fedmse_slice, tmp_path):
    nodes = [{"data-path": str(fedmse_slice / f"Client-{i}"), "partition-id": i, "max-epsilon": 6.0,
              "privacy-ledger": str(tmp_path / f"ledger-{i}.jsonl")} for i in (1, 2)]

    first = run_server(NodeGrid(nodes, run_id=11), PRIVATE, tmp_path / "first", min_nodes=2, evaluate=False)
    second = run_server(NodeGrid(nodes, run_id=12), PRIVATE, tmp_path / "second", min_nodes=2, evaluate=False)

    assert [h["round"] for h in first.history] == [1, 2] and second.history == []  # every node refused run 12
    for i in (1, 2):
        entries = [json.loads(line) for line in (tmp_path / f"ledger-{i}.jsonl").read_text().splitlines()]
        assert [e["run"] for e in entries] == [11, 11, 11] and PrivacyLedger(tmp_path / f"ledger-{i}.jsonl", 6).spent() == 4
    with pytest.raises(BudgetRefused, match="no federated evaluation"):  # its metrics would be outside ε
        evaluate(Message(RecordDict({"config": config_record(PRIVATE, None)}), 1, "evaluate"),
                 Context(run_id=11, node_id=1, node_config=nodes[0], state=RecordDict(), run_config={}))


def test_a_node_config_key_with_a_typo_is_refused_not_ignored():
    from fedcl.federated.flower.client_app import _node_settings

    with pytest.raises(InputError, match="unknown key\\(s\\) max_epsilon, privacy_ledger"):
        _node_settings({"data-path": "x", "partition-id": 1, "max_epsilon": 4.0, "privacy_ledger": "l"})


def test_the_client_app_knows_the_budget_keys_the_ledger_reads():
    from fedcl.federated.flower import client_app
    from fedcl.privacy import budget

    assert client_app.BUDGET_KEYS == budget.BUDGET_KEYS  # written twice so most nodes never import the budget
