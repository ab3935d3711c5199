"""Federated training on a data set: splits, the federation, each node's detector, the saved model."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fedcl.config import FedCLConfig, save_config
from fedcl.data import ROW_SETS, NodeData, NodeSplit, leakage_guard, read_dataset, split_node, training_scaler
from fedcl.data._readers import iter_dataset  # not (yet) exported by fedcl.data
from fedcl.errors import ConfigError, InputError
from fedcl.federated import FederationResult, FederationState, run_federation
from fedcl.federated.params import get_arrays, set_arrays
from fedcl.model import ENCODERS, AcceptingDetector, FedCLDetector, PersonalDetector, accepting, choose_window, encoder_for
from fedcl.pipeline.checkpoint import RunCheckpoint, atomic_save, data_fingerprint
from fedcl.rundir import (CONFIG_FILE, HISTORY_FILE, MODEL_FILE, TRAINING_CHECKPOINT, append_history, check_run_dir,
                          clear_results, prepare_run_dir, read_history)


def split_nodes(nodes: list[NodeData], config: FedCLConfig) -> list[NodeSplit]:
    """Split each node's benign rows (train/val/test) and apply the leakage guard."""
    return [_guarded(split_node(node, config.val_fraction, config.test_fraction, config.seed), config)
            for node in nodes]


# A node's attack rows from this size on wait for scoring in a memory-mapped file rather than in memory:
# the full N-BaIoT holds 3.0 GB of them as float32, which training never reads (docs/speed.md, "Full scale").
SPILL_BYTES = 64 << 20


def load_splits(config: FedCLConfig) -> list[NodeSplit]:
    """Read every node of ``config.data`` and split it (see :func:`split_nodes`).

    Attack rows are float32 (only ever scored, and a detector casts what it scores to float32 first: the
    scores are the same), benign rows float64 (the scalers' statistics are fitted on them in float64).
    N-BaIoT nodes are read one at a time and guarded in place (each node's rows are this function's own),
    and a node's attack rows of ``SPILL_BYTES`` or more are kept in an unlinked temporary file, memory-mapped
    copy-on-write (:func:`spilled`): an ndarray like any other, whose pages load when read.
    """
    if not config.data:
        raise ConfigError("no data path given (--data)")
    if config.schema != "nbaiot":  # every file's header decides the columns: read them all first
        return split_nodes(read_dataset(config.data, config.layout, config.schema, attack_dtype=np.float32), config)
    return [replace(s, attack=spilled(s.attack)) for s in iter_splits(config)]


def iter_splits(config: FedCLConfig) -> Iterator[NodeSplit]:
    """The guarded splits of ``config.data``'s nodes, each read when asked for: a caller that uses
    each node before the next (scoring) holds one node's rows at a time. Same nodes, order and errors
    as :func:`load_splits`."""
    if not config.data:
        raise ConfigError("no data path given (--data)")
    if config.schema != "nbaiot":
        yield from load_splits(config)
        return
    for node in iter_dataset(config.data, config.layout, attack_dtype=np.float32):
        yield _guarded(split_node(node, config.val_fraction, config.test_fraction, config.seed), config, copy=False)


def _guarded(split: NodeSplit, config: FedCLConfig, copy: bool = True) -> NodeSplit:
    """``split`` with the leakage guard applied to every row set; ``copy=False``: in the split's own arrays."""
    if config.leakage_guard == "off":
        return split
    strict = config.leakage_guard == "strict"
    return replace(split, **{k: leakage_guard(getattr(split, k), strict=strict, copy=copy) for k in ROW_SETS})


def spilled(rows: np.ndarray) -> np.ndarray:
    """``rows`` as a copy-on-write memory map of an unlinked temporary file when they take ``SPILL_BYTES`` or more
    (else ``rows``): their memory goes back to the system now, and each page comes back when it is read."""
    if rows.nbytes < SPILL_BYTES:
        return rows
    with tempfile.TemporaryFile() as f:  # unlinked: the file lives as long as the mapping
        rows.tofile(f)
        f.flush()
        return np.memmap(f, dtype=rows.dtype, mode="c", shape=rows.shape)


def check_trainable(splits: list[NodeSplit], config: FedCLConfig) -> None:
    """Fail before training, in one line, on data a run cannot use with this config."""
    if config.encoder not in ENCODERS:
        raise ConfigError(f"unknown encoder {config.encoder!r}; choose one of {', '.join(ENCODERS)}")
    if config.node_differential_privacy and len(splits) < 2:
        raise ConfigError("dp_level node needs at least 2 nodes: the noised mean of one node is its update")
    if config.acceptance_margin and len(splits) < 2:
        raise ConfigError("acceptance_margin needs at least 2 nodes: a node accepts what the others find benign")
    for s in splits:
        if len(s.train) < 2:
            raise InputError(f"node {s.name!r} has {len(s.train)} benign training row(s); "
                             "contrastive training needs at least 2")
        if len(s.val) == 0:
            raise InputError(f"node {s.name!r} has no benign validation rows to set its threshold on")


def scaled_training_rows(split: NodeSplit, config: FedCLConfig | None = None) -> torch.Tensor:
    """A node's benign training rows scaled as :func:`fedcl.data.training_scaler` says for ``config``
    (NaN = missing): what its local training sees."""
    if config is None:
        return torch.from_numpy(training_scaler().fit_transform(split.train))
    return torch.from_numpy(training_scaler(config.differential_privacy, config.schema).fit_transform(split.train))


NodeDetector = FedCLDetector | PersonalDetector | AcceptingDetector  # the last from with_acceptance


def make_detector(encoder: torch.nn.Module, config: FedCLConfig, own_encoder: torch.nn.Module | None = None,
                  tuned_encoder: torch.nn.Module | None = None) -> NodeDetector:
    """An unfitted node detector around the federation's encoder, as ``config`` describes it;
    personalised (:class:`PersonalDetector`) around ``own_encoder`` too, which it then needs (and
    ``tuned_encoder`` under ``personalisation = "tuned"``)."""
    def view(enc: torch.nn.Module, public: str | None = None) -> FedCLDetector:
        return FedCLDetector(enc, normalise=config.node_normalisation, n_neighbors=config.n_neighbors,
                             n_references=config.n_references, relative=config.relative_distance,
                             rows_per_reference=config.rows_per_reference,
                             fpr_target=config.fpr_target, trim_fraction=config.trim_fraction,
                             random_state=config.seed, public=public,
                             validation_references=config.validation_references)

    shared = view(encoder, training_scaler(config.differential_privacy, config.schema).public)  # as it trained
    if config.personalisation == "off":
        return shared
    if own_encoder is None or (config.personalisation == "tuned") != (tuned_encoder is not None):
        raise ValueError("a personalised detector needs the node's own encoder (and under tuned only, its "
                         "fine-tuned encoder)")
    return PersonalDetector(shared, view(own_encoder), combine=config.personalisation, fpr_target=config.fpr_target,
                            tuned=None if tuned_encoder is None else view(tuned_encoder))


def loaded_detector(encoder: torch.nn.Module, config: FedCLConfig, n_features: int, state: dict) -> NodeDetector:
    """A node detector around the federation's ``encoder`` (of ``n_features`` inputs) as ``config`` describes
    it, holding a fitted detector's ``state`` (its ``state_dict()``, personal encoders included)."""
    def node_encoder(needed: bool) -> torch.nn.Module | None:  # a personal view's encoder, loaded with the state
        return encoder_for(config, n_features) if needed else None

    personal = config.personalisation != "off", config.personalisation == "tuned"
    return make_detector(encoder, config, *map(node_encoder, personal)).load_state_dict(state)


def trained_encoder(config: FedCLConfig, arrays: list, n_features: int) -> torch.nn.Module:
    """The encoder ``config`` describes, holding the parameters ``arrays``."""
    encoder = encoder_for(config, n_features)
    set_arrays(encoder, arrays)
    return encoder


# Experiments fit many federations over the same nodes (rules, attacks, seeds of the others), and a
# node's own encoder depends only on its rows and the training recipe: train it once per pair.
_OWN_ARRAYS: dict[tuple, list] = {}
_OWN_CACHE_SIZE = 256


def own_encoder(split: NodeSplit, config: FedCLConfig) -> torch.nn.Module:
    """Our encoder trained on one node's benign training rows alone, with the federation's recipe
    (one node: the server step is θ + Δθ whatever the rule). It never leaves the node, so it trains
    without differential privacy. One epoch a round whatever its size: more passes over a few hundred rows
    of one device memorise its modes (simulated network, 250 rows, development seed: at 4 epochs a round
    the own view alone fell from 0.987 to 0.968 AUROC), where in the federation the other nodes' updates
    hold the shared encoder back (docs/benchmark.md)."""
    recipe = config.updated(data="", aggregation="fedavg", personalisation="off", dp_epsilon=math.inf,
                            min_rows_per_round=0)
    key = (split.name, split.training_digest(), recipe)
    if key not in _OWN_ARRAYS:
        if len(_OWN_ARRAYS) >= _OWN_CACHE_SIZE:
            _OWN_ARRAYS.clear()
        _OWN_ARRAYS[key] = run_federation({split.name: scaled_training_rows(split)}, recipe).arrays
    return trained_encoder(recipe, _OWN_ARRAYS[key], split.train.shape[1])


def tuned_encoder(split: NodeSplit, config: FedCLConfig, encoder: torch.nn.Module,
                  train_only: str | None = None) -> torch.nn.Module:
    """The federation's ``encoder`` fine-tuned on one node's benign training rows with the federation's
    recipe (the usual personalisation of federated learning: the third view under ``personalisation =
    "tuned"``), ``min_rows_per_round`` included: unlike the own encoder it starts from what the federation
    learnt, and the design study measured it so (docs/benchmark.md). Like the own encoder it never leaves
    the node, so it trains without differential privacy, on rows scaled by the node's own statistics
    (under ``dp_epsilon`` the shared encoder trained on public ones: the fine-tuning adapts it to these).
    ``train_only`` "head" or "input" fine-tunes one layer only (a design study's alternatives; every layer
    measured better over its 13 cells)."""
    recipe = config.updated(data="", aggregation="fedavg", personalisation="off", dp_epsilon=math.inf)
    arrays = run_federation({split.name: scaled_training_rows(split)}, recipe, initial=get_arrays(encoder),
                            train_only=train_only).arrays
    return trained_encoder(recipe, arrays, split.train.shape[1])


def personal_encoders(split: NodeSplit, config: FedCLConfig, encoder: torch.nn.Module) -> tuple:
    """The encoders a node trains on its rows alone for its detector (:func:`make_detector`'s last two)."""
    if config.personalisation == "off":
        return None, None
    return own_encoder(split, config), tuned_encoder(split, config, encoder) if config.personalisation == "tuned" else None


def fit_node_detectors(encoder: torch.nn.Module, splits: list[NodeSplit], config: FedCLConfig,
                       on_node: Callable[[str, NodeDetector], None] | None = None, peers: Collection[NodeSplit] = (),
                       fitted: Mapping[str, NodeDetector] | None = None) -> dict[str, NodeDetector]:
    """Each node's detector on its own rows (and, personalised, its own encoder trained on them);
    thresholds from its benign validation rows only. ``on_node(name, detector)`` follows each node's.
    ``fitted``: nodes' detectors fitted already (a resumed run's), kept as they are. With
    ``acceptance_margin``, each accepts what the others' federation views find benign, and those of
    ``peers`` (nodes of the federation not fitted here), fitted on their own rows."""
    detectors = {}
    for s in splits:
        if fitted and s.name in fitted:
            detectors[s.name] = fitted[s.name]
            continue
        detectors[s.name] = make_detector(encoder, config, *personal_encoders(s, config, encoder)).fit(s.train, X_val=s.val)
        if on_node is not None:
            on_node(s.name, detectors[s.name])
    if not config.acceptance_margin:
        return detectors
    return with_acceptance(detectors, config, {p.name: fit_federation_view(encoder, p, config) for p in peers})


def fit_federation_view(encoder: torch.nn.Module, split: NodeSplit, config: FedCLConfig) -> FedCLDetector:
    """A node's detector around the federation's encoder alone, on its own rows: what it releases to the
    other nodes under ``acceptance_margin`` (the ``shared`` part of its personal detector)."""
    return federation_view_detector(encoder, config).fit(split.train, X_val=split.val)


def federation_view_detector(encoder: torch.nn.Module, config: FedCLConfig) -> FedCLDetector:
    """An unfitted detector around the federation's encoder alone, as ``config`` describes it: the form of a
    node's federation view (fitted on its rows, or loaded from the state another node released)."""
    return make_detector(encoder, config.updated(personalisation="off"))


def with_acceptance(detectors: dict[str, NodeDetector], config: FedCLConfig,
                    others: dict[str, FedCLDetector] | None = None) -> dict[str, NodeDetector]:
    """The nodes' detectors, each accepting what the others' federation views (and ``others``) find
    benign when ``config.acceptance_margin`` is on (:class:`fedcl.model.AcceptingDetector`); ConfigError
    when a node would have no other node's view to accept from."""
    if not config.acceptance_margin:
        return detectors
    if len(detectors) + len(others or {}) < 2:
        raise ConfigError(f"acceptance_margin {config.acceptance_margin:g}: node {next(iter(detectors))} has no other "
                          "node's federation view to accept from (one node, or a Flower run's node scored alone); "
                          "set acceptance_margin = 0")
    return accepting(detectors, config.acceptance_margin, others, config.acceptance_quorum)


def fit_detectors(splits: list[NodeSplit], config: FedCLConfig, on_round: Callable[[dict], None] | None = None,
                  trainers: Collection[str] | None = None, on_node: Callable[[str, NodeDetector], None] | None = None,
                  resume: RunCheckpoint | None = None, on_state: Callable[[FederationState], None] | None = None,
                  ) -> tuple[dict[str, NodeDetector], FederationResult]:
    """Federated training, then each node's detector on its own rows (threshold from its validation rows).

    ``trainers`` (names, default all) take part in training; the other nodes join afterwards, with
    the federation's encoder and their own scaler, references and threshold (unseen devices), and
    only theirs are returned (with ``acceptance_margin``, accepting from the trainers' federation views too).
    ``resume``: go on from an interrupted run's checkpoint (its federation, its fitted detectors);
    ``on_state`` gets the federation's state after each round (:func:`fedcl.federated.run_federation`).
    """
    training = [s for s in splits if trainers is None or s.name in trainers]
    joining = splits if trainers is None else [s for s in splits if s.name not in trainers]
    result = run_federation({s.name: scaled_training_rows(s, config) for s in training}, config, on_round=on_round,
                            resume=None if resume is None else resume.state, on_state=on_state)
    n_features = splits[0].train.shape[1]
    encoder = trained_encoder(config, result.arrays, n_features)
    fitted = {name: loaded_detector(encoder, config, n_features, state)
              for name, state in (resume.nodes if resume is not None else {}).items()}
    joined = {s.name for s in joining}
    return fit_node_detectors(encoder, joining, config, on_node, [s for s in training if s.name not in joined],
                              fitted), result


def open_checkpoint(out_dir: str | Path, config: FedCLConfig, splits: list[NodeSplit], resume: bool) -> RunCheckpoint:
    """The checkpoint a run of ``config`` on ``splits`` into ``out_dir`` keeps: an interrupted run's to go on
    from (``resume``), else a new one. Refuses, in one line, a run that would overwrite an interrupted run,
    go on from one of other settings or data (:func:`fedcl.rundir.check_run_dir`), or from a finished run."""
    out = Path(out_dir)
    if resume and not (out / TRAINING_CHECKPOINT).is_file() and (out / MODEL_FILE).is_file():
        raise ConfigError(f"{out}: the run finished training (it saved {MODEL_FILE}): nothing to resume; "
                          f"`fedcl evaluate --out {out}` scores it")
    check_run_dir(out, config, resume, TRAINING_CHECKPOINT)
    fingerprint = data_fingerprint(splits)
    checkpoint = RunCheckpoint.load(out, fingerprint) if resume else None
    if checkpoint is None:
        return RunCheckpoint(out, fingerprint)
    if checkpoint.state.round > config.rounds:
        raise ConfigError(f"{out}: the checkpoint is at round {checkpoint.state.round}, beyond rounds={config.rounds}")
    return checkpoint


def train(config: FedCLConfig, out_dir: str | Path, on_round: Callable[[dict], None] | None = None,
          splits: list[NodeSplit] | None = None, on_node: Callable[[str, NodeDetector], None] | None = None,
          resume: bool = False, checkpoint: RunCheckpoint | None = None) -> Path:
    """Federated training on ``config.data``; writes config, per-round history and the model.

    Each node scales its own training rows with its own statistics; only model updates and a few
    embedding statistics cross the federation (see :func:`fedcl.federated.run_federation`).
    ``splits`` (from :func:`load_splits`) saves reading the data again when the caller has it;
    ``on_round`` and ``on_node`` follow the rounds and then the node detectors.

    Until the model is saved, a checkpoint (:mod:`fedcl.pipeline.checkpoint`) keeps the federation after
    each round and each node's detector once fitted; ``resume`` goes on from it to the model an
    uninterrupted run writes (the same settings and rows; ``rounds`` may grow). Without ``resume``, a
    checkpoint in ``out_dir`` is refused, not overwritten. ``checkpoint``: the one :func:`open_checkpoint`
    gave for this run, if the caller opened it already (to refuse before any progress bar).
    """
    out = prepare_run_dir(out_dir)
    splits = load_splits(config) if splits is None else splits
    check_trainable(splits, config)
    checkpoint = checkpoint or open_checkpoint(out, config, splits, resume)
    if checkpoint.state is None:
        clear_results(out)
        (out / HISTORY_FILE).write_text("")
    else:
        done = checkpoint.state.round
        if done < config.rounds:  # more rounds: the nodes fit their detectors again, on the new encoder
            checkpoint.clear_nodes()
        # Interrupted between a round's history line and its checkpoint: that round is trained again.
        kept = [entry for entry in read_history(out) if entry["round"] <= done]
        (out / HISTORY_FILE).write_text("".join(json.dumps(entry) + "\n" for entry in kept))
    save_config(config.updated(data=str(Path(config.data).resolve())), out / CONFIG_FILE)  # valid from anywhere

    def record(entry: dict) -> None:
        append_history(out, entry)
        if on_round is not None:
            on_round(entry)

    def node_fitted(name: str, detector: NodeDetector) -> None:
        checkpoint.save_node(name, detector.state_dict())
        if on_node is not None:
            on_node(name, detector)

    detectors, result = fit_detectors(splits, config, on_round=record, on_node=node_fitted,
                                      resume=checkpoint if checkpoint.state is not None else None,
                                      on_state=checkpoint.save_federation)
    atomic_save({  # a crash while writing leaves the checkpoint, not half a model
        "windows": {s.name: choose_window(detectors[s.name].predict(s.val)) for s in splits},
        "config": config.to_dict(),
        "n_features": splits[0].train.shape[1],
        "columns": list(splits[0].columns),
        "encoder": next(iter(detectors.values())).encoder.state_dict(),
        "reference": torch.as_tensor(result.reference if result.reference is not None  # none under node-level DP
                                     else np.zeros(config.embedding_dim), dtype=torch.float32),
        "nodes": {name: d.state_dict() for name, d in detectors.items()},
    }, out / MODEL_FILE)
    checkpoint.remove()
    return out
