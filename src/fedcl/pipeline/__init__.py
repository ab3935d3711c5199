"""End-to-end steps on a run directory: train (federated), then evaluate (held-out metrics + report).

:mod:`~fedcl.pipeline.training` trains and fits each node's detector; :mod:`~fedcl.pipeline.scoring`
scores held-out rows and summarises them; :mod:`fedcl.rundir` reads and writes the run directory.
"""

from fedcl.pipeline.scoring import evaluate, load_detectors, score_nodes, summarise
from fedcl.pipeline.training import (
    NodeDetector,
    check_trainable,
    fit_detectors,
    fit_node_detectors,
    iter_splits,
    load_splits,
    make_detector,
    open_checkpoint,
    own_encoder,
    scaled_training_rows,
    split_nodes,
    spilled,
    train,
    trained_encoder,
    tuned_encoder,
    with_acceptance,
)
from fedcl.rundir import load_run_config, load_windows, prepare_run_dir

__all__ = [
    "NodeDetector",
    "check_trainable",
    "evaluate",
    "fit_detectors",
    "fit_node_detectors",
    "load_detectors",
    "load_run_config",
    "iter_splits",
    "load_splits",
    "load_windows",
    "make_detector",
    "open_checkpoint",
    "own_encoder",
    "prepare_run_dir",
    "scaled_training_rows",
    "score_nodes",
    "spilled",
    "split_nodes",
    "summarise",
    "train",
    "trained_encoder",
    "tuned_encoder",
    "with_acceptance",
]
