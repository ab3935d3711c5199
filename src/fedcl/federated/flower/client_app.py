"""Flower ClientApp: one node trains on its own rows, replies with its update and a few statistics.

Node settings (``flower-supernode --node-config``): ``data-path`` (this node's data folder, any
layout fedcl reads; required), ``node-name`` (which node of that folder, when it holds several) and
``partition-id`` (this node's index in the federation, a distinct integer per node; required), and
optionally ``max-epsilon`` with ``privacy-ledger`` and ``max-delta`` (the node's own privacy budget:
:mod:`fedcl.privacy.budget`). The
node's random stream is keyed by its name, as in the in-process runner (:mod:`fedcl.seeding`); the
reply carries the name, which labels the node in the run history, and the partition id, which fixes
the order the server aggregates in. Under secure aggregation the train reply holds only the clear
scalars, and the node answers the masked sums' messages from the update it keeps in ``context.state``
(:mod:`.secure`). After the last round the node evaluates the final model on its own held-out rows
and replies with metrics and score histograms (:mod:`.fleet`).

Flower starts a fresh process for every message, which imports this module before any work: it
imports only what training needs (torch, the data readers, the encoder), never fedcl's server side,
detectors or evaluation. ``tests/federated/flower/test_client_app.py`` holds it to that.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, Message
from flwr.clientapp import ClientApp

from fedcl.config import FedCLConfig
from fedcl.data import NodeData, leakage_guard, read_dataset, split_node, training_scaler
from fedcl.errors import ConfigError, InputError
from fedcl.federated.compress import compressed_update
from fedcl.federated.flower._records import (
    HELD_KEY,
    PEER_PREFIX,
    RELEASE_ACTION,
    RESIDUAL_KEY,
    SECURE_ACTIONS,
    SECURE_KEY,
    held_model,
    keep_update,
    read_config_record,
    scalar_records,
    update_records,
)
from fedcl.federated.local import local_train, node_generator
from fedcl.federated.params import get_arrays
from fedcl.model import encoder_for, initial_encoder

app = ClientApp()


#: The node-config keys a node reads; any other is a typo, refused rather than ignored. The budget's are
#: those of :data:`fedcl.privacy.budget.BUDGET_KEYS` (not imported: most nodes never load that module).
BUDGET_KEYS = ("max-epsilon", "max-delta", "privacy-ledger")
NODE_CONFIG_KEYS = ("data-path", "partition-id", "node-name", "worker-socket", *BUDGET_KEYS)


def _node_settings(node_config: dict) -> tuple[str, str, int]:
    """(data path, node name or "", partition id) from the node config; InputError when one is missing or
    a key is unknown."""
    unknown = sorted(set(node_config) - set(NODE_CONFIG_KEYS))
    if unknown:
        raise InputError(f"node config has unknown key(s) {', '.join(unknown)}; known: {', '.join(NODE_CONFIG_KEYS)}")
    missing = [key for key in ("data-path", "partition-id") if key not in node_config]
    if missing:
        raise InputError(f"node config has no {' or '.join(missing)}: start the SuperNode with --node-config "
                         "\"data-path='DIR' partition-id=N\" (N a distinct integer per node), or use "
                         "`fedcl flower supernode --data DIR --partition-id N`")
    try:
        partition = int(str(node_config["partition-id"]))
    except ValueError:
        raise InputError(f"node config partition-id={node_config['partition-id']!r} is not an integer") from None
    return str(node_config["data-path"]), str(node_config.get("node-name", "")), partition


def _pick_node(nodes: list[NodeData], data_path: str, node_name: str) -> NodeData:
    """The node named ``node_name`` in ``data_path``, or its only node."""
    if node_name:
        chosen = [n for n in nodes if n.name == node_name]
        if not chosen:
            raise InputError(f"{data_path}: no node named {node_name!r} (found {', '.join(n.name for n in nodes)})")
        return chosen[0]
    if len(nodes) != 1:
        raise InputError(f"{data_path} holds {len(nodes)} nodes; set node-name in the node config")
    return nodes[0]


def _data_stamp(data_path: str) -> tuple:
    """Size and modification time of every file under ``data_path``: a cached read is stale once it changes."""
    root = Path(data_path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


# In-process drivers and a node's warm worker call the app every round: read the rows once, again if they change.
@lru_cache(maxsize=2)
def _training_rows(data_path: str, node_name: str, config: FedCLConfig, stamp: tuple = ()) -> tuple[str, torch.Tensor]:
    """The node's name and its scaled benign training rows: the rows ``fedcl run`` trains this node on.

    The recipe of :func:`fedcl.pipeline.load_splits` and :func:`fedcl.pipeline.scaled_training_rows`
    for one node and its training rows only, without importing the pipeline (detectors, scoring):
    ``test_inprocess.py`` checks the two give the same training.
    """
    node = _pick_node(read_dataset(data_path, config.layout, config.schema), data_path, node_name)
    train = split_node(node, config.val_fraction, config.test_fraction, config.seed).train
    if config.leakage_guard != "off":
        train = leakage_guard(train, strict=config.leakage_guard == "strict")
    return node.name, torch.from_numpy(training_scaler(config.differential_privacy, config.schema).fit_transform(train))


@app.train()
def train(msg: Message, context: Context) -> Message:
    data_path, node_name, partition = _node_settings(context.node_config)  # before any work
    config, reference = read_config_record(msg.content["config"])
    round_ = int(msg.content["config"]["server-round"])
    name, rows = _training_rows(data_path, node_name, config, _data_stamp(data_path))
    ledger = _ledger(context)
    if ledger is not None:  # the node's own budget, charged before any training
        ledger.charge(context.run_id, config, round_, len(rows))
    encoder = encoder_for(config, rows.shape[1])
    state = context.state
    model = _held_model(msg, state, config, rows.shape[1]) if config.compression_bits else \
        msg.content["arrays"].to_numpy_ndarrays()
    update = local_train(encoder, model, rows, reference, config, node_generator(config.seed, name, round_),
                         round_=round_)
    if config.secure_aggregation:  # the update stays here until the masked sums (query.secagg_*) ask for it
        keep_update(state, update, round_)
        return Message(scalar_records(update, name, partition), reply_to=msg)
    packed = None
    if config.compression_bits:  # Q(Δθ_i + e_i) goes; the residual e_i stays for the next round
        residual = state[RESIDUAL_KEY].to_numpy_ndarrays()[0] if RESIDUAL_KEY in state else None
        update, packed, residual = compressed_update(update, residual, config.compression_bits)
        state[RESIDUAL_KEY] = ArrayRecord([residual])
    return Message(update_records(update, model, name, partition, packed,
                                  statistics=not config.node_differential_privacy), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """After the last round: fit this node's detector on its rows, score its held-out rows, reply with metrics."""
    from fedcl.federated.flower.fleet import node_evaluation  # detectors and scoring load only to evaluate

    data_path, node_name, partition = _node_settings(context.node_config)
    if _ledger(context) is not None:
        from fedcl.privacy.budget import BudgetRefused

        raise BudgetRefused("this node has a privacy budget: no federated evaluation, whose metrics no ε counts "
                            "(evaluate on the node with fedcl evaluate --data)")
    config, _ = read_config_record(msg.content["config"])
    node = _pick_node(read_dataset(data_path, config.layout, config.schema), data_path, node_name)
    peers = {key.removeprefix(PEER_PREFIX): record.to_torch_state_dict()
             for key, record in msg.content.array_records.items() if key.startswith(PEER_PREFIX)}
    return Message(node_evaluation(node, partition, config, msg.content["arrays"].to_numpy_ndarrays(), peers),
                   reply_to=msg)


@app.query(RELEASE_ACTION)
def release(msg: Message, context: Context) -> Message:
    """Before the evaluation, under ``acceptance_margin``: this node's federation view, for the other nodes."""
    from fedcl.federated.flower.fleet import node_view  # detectors load only to evaluate

    data_path, node_name, partition = _node_settings(context.node_config)
    if _ledger(context) is not None:
        from fedcl.privacy.budget import BudgetRefused

        raise BudgetRefused("this node has a privacy budget: it releases no detector, which no ε counts")
    config, _ = read_config_record(msg.content["config"])
    if not config.acceptance_margin:  # the run's config decides what leaves the node, not the request alone
        raise ConfigError("this run's acceptance_margin is 0: the node releases no view")
    node = _pick_node(read_dataset(data_path, config.layout, config.schema), data_path, node_name)
    return Message(node_view(node, partition, config, msg.content["arrays"].to_numpy_ndarrays()), reply_to=msg)


def _ledger(context: Context):
    """The node's :class:`~fedcl.privacy.budget.PrivacyLedger` when its node config sets a budget, else None."""
    if not any(key in context.node_config for key in BUDGET_KEYS):
        return None
    from fedcl.privacy.budget import node_ledger  # only nodes with a budget load it

    return node_ledger(context.node_config)


def _held_model(msg: Message, state, config: FedCLConfig, n_features: int) -> list:
    """θ̂ under compression: the broadcast applied to the model this node holds (before its first round,
    the seeded initial encoder), kept in ``context.state`` for the next round (:mod:`fedcl.federated.compress`)."""
    base = state[HELD_KEY].to_numpy_ndarrays() if HELD_KEY in state else \
        get_arrays(initial_encoder(config, n_features))
    model = held_model(msg.content, base)
    state[HELD_KEY] = ArrayRecord(model)
    return model


def _secure_handler(action: str):
    def handle(msg: Message, context: Context) -> Message:
        from fedcl.federated.flower.secure import node_step  # cryptography loads only under secure aggregation

        return Message(node_step(action, msg.content[SECURE_KEY], context.state), reply_to=msg)

    handle.__name__ = action
    return handle


for _action in SECURE_ACTIONS:  # the steps of secure aggregation, one message type each (query.<action>)
    app.query(_action)(_secure_handler(_action))
