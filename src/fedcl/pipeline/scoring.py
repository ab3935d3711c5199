"""Scoring held-out rows with a trained run: per-node detectors, scores, metrics and the report."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from fedcl.data import NodeSplit
from fedcl.errors import ConfigError, InputError
from fedcl.eval.metrics import detection_metrics, few_rows
from fedcl.model import encoder_for
from fedcl.pipeline.training import (NodeDetector, fit_node_detectors, iter_splits, load_splits, loaded_detector,
                                    with_acceptance)
from fedcl.rundir import METRICS_FILE, SCORES_FILE, check_columns, load_model, load_run_config


def load_detectors(run_dir: str | Path, splits: list[NodeSplit] | None = None) -> dict[str, NodeDetector]:
    """The per-node detectors of a trained run (loaded with ``weights_only=True``).

    A run trained over Flower holds only the global encoder and g (the server never sees node
    data); its detectors are fitted here, each on its own node's training and validation rows, so
    ``splits`` is needed then.
    """
    config = load_run_config(run_dir)
    saved = load_model(run_dir)
    encoder = encoder_for(config, saved["n_features"])
    encoder.load_state_dict(saved["encoder"])
    if saved["nodes"]:
        return with_acceptance({name: loaded_detector(encoder, config, saved["n_features"], state)
                                for name, state in saved["nodes"].items()}, config)
    if splits is None:
        raise ConfigError(f"{run_dir}: the run has no per-node detectors (a Flower run: each node fits its own); "
                          f"`fedcl evaluate --data DATA` fits them from the rows; `detect` and `export` take a run of `fedcl train`")
    return fit_node_detectors(encoder, splits, config)


def score_nodes(detectors: dict[str, NodeDetector], splits: Iterable[NodeSplit]) -> pd.DataFrame:
    """One row per held-out test row: node, label (1 = attack), family, score, prediction.

    ``splits`` is iterated once, each node scored before the next is asked for (:func:`iter_splits`).
    """
    frames = []
    for s in splits:
        if s.name not in detectors:
            raise InputError(f"node {s.name!r} is in the data but not in the trained model")
        det = detectors[s.name]
        # Benign and attack rows scored apart: stacking them would copy the node's rows (rows score alone).
        scores = np.concatenate([det.decision_function(x) if len(x) else np.empty(0)
                                 for x in (s.test_benign, s.attack)])
        frames.append(pd.DataFrame({
            "node": s.name,
            "label": np.r_[np.zeros(len(s.test_benign), int), np.ones(len(s.attack), int)],
            "family": np.r_[np.full(len(s.test_benign), "benign", dtype=object), s.attack_family.astype(object)],
            "score": scores,
            "prediction": (scores > det.threshold_).astype(int),
        }))
    return pd.concat(frames, ignore_index=True)


def write_scores(scores: pd.DataFrame, path: Path) -> None:
    """scores.csv: pyarrow's writer (~10x pandas': 7 M rows take seconds, not half a minute), unquoted as pandas
    writes it; pandas' when a value would need quoting (a node name with a comma)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pa.Table.from_pandas(scores, preserve_index=False)
        with path.open("wb") as out:
            out.write((",".join(scores.columns) + "\n").encode())  # pyarrow would quote the names
            pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowException:
        scores.to_csv(path, index=False)


def _checked(run: Path, splits: Iterable[NodeSplit]) -> Iterator[NodeSplit]:
    """``splits``, after checking that the first one's columns are the run's (ConfigError otherwise)."""
    for i, s in enumerate(splits):
        if i == 0:
            check_columns(run, s.columns)
        yield s


def _counted(splits: Iterable[NodeSplit], rows: dict[str, dict[str, int]]) -> Iterator[NodeSplit]:
    """``splits``, noting each node's row counts in ``rows`` on the way (metrics.json's ``rows``)."""
    for s in splits:
        rows[s.name] = {"training": len(s.train), "validation": len(s.val), "benign_test": len(s.test_benign),
                        "attack": len(s.attack)}
        yield s


def summarise(scores: pd.DataFrame) -> dict:
    """metrics.json: pooled, per node, and per attack family (each family against all benign test rows)."""
    def metrics(df: pd.DataFrame) -> dict:
        return detection_metrics(df["label"].to_numpy(), df["score"].to_numpy(), df["prediction"].to_numpy())

    benign = scores[scores["label"] == 0]
    families = sorted(set(scores["family"]) - {"benign"})
    return {
        "pooled": metrics(scores),
        "nodes": {name: metrics(df) for name, df in scores.groupby("node", sort=False)},
        "families": {f: metrics(pd.concat([benign, scores[scores["family"] == f]])) for f in families},
        "counts": {"benign_test": int(len(benign)), "attack": int((scores["label"] == 1).sum())},
    }


def evaluate(run_dir: str | Path, data: str | None = None) -> dict:
    """Score each node's held-out benign test and attack rows; write scores, metrics and the report."""
    from fedcl.eval.report import write_report  # matplotlib only when a report is written

    run = Path(run_dir)
    config = load_run_config(run).updated(data=data)
    rows: dict[str, dict[str, int]] = {}
    if load_model(run)["nodes"]:  # detectors saved: score node by node, one node's rows in memory at a time
        scores = score_nodes(load_detectors(run), _counted(_checked(run, iter_splits(config)), rows))
    else:  # a Flower run: every node's detector is fitted first, on its training rows
        splits = load_splits(config)
        check_columns(run, splits[0].columns)
        scores = score_nodes(load_detectors(run, splits), _counted(splits, rows))
    write_scores(scores, run / SCORES_FILE)
    summary = summarise(scores) | {"rows": rows, "few_rows": few_rows(rows, config.fpr_target)}
    del scores  # the report reads scores.csv back
    if config.differential_privacy or config.node_differential_privacy:  # what the run spent, per the accountant (docs/privacy.md)
        from fedcl.privacy.dp import privacy_record
        from fedcl.rundir import read_history

        summary["privacy"] = privacy_record(config, read_history(run))
    (run / METRICS_FILE).write_text(json.dumps(summary, indent=2))
    write_report(run, config, summary)
    return summary
