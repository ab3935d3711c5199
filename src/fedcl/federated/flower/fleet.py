"""Federated evaluation: each node scores its own held-out rows; the server sees metrics, never rows.

After the last round the server sends the final θ to every node (message type ``evaluate``). A node
fits its detector on its own training and validation rows, as ``fedcl evaluate --data`` would there,
scores its held-out benign test and attack rows and replies with

- its metrics (:data:`fedcl.eval.metrics.METRIC_KEYS`, exact) and row counts;
- how many rows its threshold flagged, in all and per attack family (exact pooled threshold metrics);
- histograms of its scores on the fixed bins :data:`SCORE_EDGES`, benign, attack and per family:
  what pooled AUROC, AUPRC and FPR@TPR0.99 over the fleet need (at the bins' resolution,
  100 per decade), since a node's scores never leave it.

Under ``acceptance_margin`` the server first asks every node for its federation view (``query.release``),
checks each and sends each node the others' views with its evaluate message.

docs/privacy.md lists what these reveal. The server writes ``fleet.json`` (per node, means over
nodes, pooled, per family, nodes that did not answer) and ``fleet.md`` with ``fleet_roc.png``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fedcl.config import FedCLConfig
from fedcl.data import NodeData
from fedcl.eval.metrics import METRIC_KEYS, count_metrics, detection_metrics, few_rows, ordered, ranking_metrics
from fedcl.federated.flower._records import (
    METRICS_KEY,
    NODE_KEY,
    PEER_PREFIX,
    RELEASE,
    VIEW_KEY,
    config_record,
    read_node_record,
)
from fedcl.rundir import FLEET_FILE

__all__ = ["FLEET_FILE", "SCORE_EDGES", "evaluate_fleet", "node_evaluation", "node_view", "pooled_metrics",
           "released_views"]

#: Score histogram bins: 100 per decade from 1e-4 to 1e6, and one below and one above.
SCORE_EDGES = np.r_[-np.inf, np.logspace(-4, 6, 1001), np.inf]
HISTOGRAMS_KEY = "histograms"
_BENIGN, _ATTACK = "benign", "attack"  # histogram and count keys


def _histogram(scores: np.ndarray) -> list[int]:
    return np.histogram(scores, SCORE_EDGES)[0].astype(int).tolist()


def node_view(node: NodeData, partition_id: int, config: FedCLConfig, arrays: list[np.ndarray]) -> RecordDict:
    """What a node releases to its peers under ``acceptance_margin``: its detector around the federation's
    encoder alone (scaler, embedding statistics, references, radii, threshold), fitted on its own rows."""
    from fedcl.pipeline.training import fit_federation_view, split_nodes, trained_encoder

    [split] = split_nodes([node], config)
    view = fit_federation_view(trained_encoder(config, arrays, split.train.shape[1]), split, config)
    return RecordDict({VIEW_KEY: ArrayRecord(torch_state_dict=view.state_dict()),
                       NODE_KEY: ConfigRecord({"node-name": node.name, "partition-id": partition_id})})


def node_evaluation(node: NodeData, partition_id: int, config: FedCLConfig, arrays: list[np.ndarray],
                    peers: dict | None = None) -> RecordDict:
    """A node's evaluation reply: its detector fitted and scored on its own rows, as ``fedcl evaluate``;
    under ``acceptance_margin`` accepting what ``peers`` (name: the view state another node released,
    :func:`node_view`) find benign; a view that does not load is left out, with a warning."""
    from fedcl.pipeline.scoring import score_nodes  # detectors and scoring: only where a node evaluates
    from fedcl.pipeline.training import (federation_view_detector, fit_node_detectors, split_nodes, trained_encoder,
                                         with_acceptance)

    [split] = split_nodes([node], config)
    encoder = trained_encoder(config, arrays, split.train.shape[1])
    views = {}
    for name, state in (peers or {}).items():
        try:
            view = federation_view_detector(encoder, config).load_state_dict(state)
            view.decision_function(split.val[:1])  # shapes that do not fit this run's rows fail here, not later
            views[name] = view
        except (KeyError, ValueError, RuntimeError) as why:
            logging.getLogger("flwr").warning("the view of %s is left out: %s", name, why)
    detectors = with_acceptance(fit_node_detectors(encoder, [split], config.updated(acceptance_margin=0.0)), config, views)
    scores = score_nodes(detectors, [split])
    label, score, flagged = (scores[k].to_numpy() for k in ("label", "score", "prediction"))
    metrics = detection_metrics(label, score, flagged)
    counts = {"benign-test": int((label == 0).sum()), _ATTACK: int((label == 1).sum()),
              "flagged-benign": int(flagged[label == 0].sum()), "flagged-attack": int(flagged[label == 1].sum()),
              "training": len(split.train), "validation": len(split.val)}  # how coarse its threshold is
    histograms = {_BENIGN: _histogram(score[label == 0]), _ATTACK: _histogram(score[label == 1])}
    for family, rows in scores[scores["label"] == 1].groupby("family", sort=True):
        histograms[f"{_ATTACK}:{family}"] = _histogram(rows["score"].to_numpy())
        counts[f"flagged-attack:{family}"] = int(rows["prediction"].sum())
    values = {k: v for k, v in metrics.items() if v is not None}  # a MetricRecord holds no None
    return RecordDict({METRICS_KEY: MetricRecord({**values, **counts}), HISTOGRAMS_KEY: MetricRecord(histograms),
                       NODE_KEY: ConfigRecord({"node-name": node.name, "partition-id": partition_id})})


def pooled_metrics(benign: np.ndarray, attack: np.ndarray, flagged_benign: int, flagged_attack: int) -> dict:
    """Metrics of rows known only as score histograms (bins of :data:`SCORE_EDGES`) and threshold counts."""
    bins = np.arange(len(benign))
    ranking = ranking_metrics(np.r_[np.zeros(len(bins)), np.ones(len(bins))], np.r_[bins, bins],
                              sample_weight=np.r_[benign, attack])
    counts = count_metrics(flagged_attack, flagged_benign, int(attack.sum()), int(benign.sum()))
    return ordered({**ranking, **counts})


def _malformed(reply: RecordDict, names: set[str]) -> str:
    """Why a node's evaluation reply cannot be counted ("" if it can): what the summary reads must be there,
    histograms of the fixed bins whose totals are the row counts, flagged rows no more than rows, a name of its own."""
    try:
        name, _ = read_node_record(reply)
        m, h = reply[METRICS_KEY], reply[HISTOGRAMS_KEY]
        counts = {_BENIGN: int(m["benign-test"]), _ATTACK: int(m[_ATTACK])}
        flagged = {_BENIGN: int(m["flagged-benign"]), _ATTACK: int(m["flagged-attack"])}
        if not set(counts) <= set(h):
            return f"no {' or '.join(sorted(set(counts) - set(h)))} histogram"
        for key in h:
            hist = np.asarray(h[key])
            if hist.shape != (len(SCORE_EDGES) - 1,) or (hist < 0).any():
                return f"histogram {key} is not {len(SCORE_EDGES) - 1} counts"
            family = key.split(":", 1)[1] if key.startswith(f"{_ATTACK}:") else None
            total = hist.sum()
            if family is not None and not 0 <= int(m[f"flagged-attack:{family}"]) <= total:
                return f"flagged rows of {family} are not between 0 and its {total} rows"
            if family is None and (key not in counts or total != counts[key]):
                return f"histogram {key} does not sum to its row count"
        if any(not 0 <= flagged[k] <= counts[k] for k in counts):
            return "flagged rows are not between 0 and the row counts"
        if any(k in m and int(m[k]) < 0 for k in ("training", "validation")):
            return "a negative count of training or validation rows"
    except (KeyError, TypeError, ValueError) as missing:
        return f"unreadable ({type(missing).__name__}: {missing})"
    return f"a second reply named {name}" if name in names else ""


def _summary(replies: list[RecordDict], failures: list[str], history: list[dict], fpr_target: float) -> dict:
    """fleet.json from the nodes' replies (in partition order) and the run's history (``fpr_target``: the
    run's, for :func:`~fedcl.eval.metrics.few_rows`)."""
    nodes, benign, attack, families = {}, 0, 0, {}
    flagged_benign = flagged_attack = 0
    for reply in replies:
        name, partition = read_node_record(reply)
        m, h = reply[METRICS_KEY], reply[HISTOGRAMS_KEY]
        excluded = [r["round"] for r in history if r["nodes"].get(name, {}).get("excluded")]
        nodes[name] = {**{k: m.get(k) for k in METRIC_KEYS}, "benign_test": int(m["benign-test"]),
                       "attack": int(m[_ATTACK]), "partition_id": partition, "rounds_excluded": excluded,
                       **{k: int(m[k]) for k in ("training", "validation") if k in m}}  # older nodes send none
        benign, attack = benign + np.asarray(h[_BENIGN]), attack + np.asarray(h[_ATTACK])
        flagged_benign, flagged_attack = flagged_benign + int(m["flagged-benign"]), flagged_attack + int(m["flagged-attack"])
        for key in h:
            if key.startswith(f"{_ATTACK}:"):
                family = key.split(":", 1)[1]
                seen = families.setdefault(family, [0, 0])
                seen[0], seen[1] = seen[0] + np.asarray(h[key]), seen[1] + int(m[f"flagged-attack:{family}"])
    means = {k: float(np.mean(v)) if (v := [n[k] for n in nodes.values() if n[k] is not None]) else None
             for k in METRIC_KEYS}
    pooled = pooled_metrics(benign, attack, flagged_benign, flagged_attack) if nodes else None
    return {
        "source": "federated evaluation: node metrics exact; pooled and per-family AUROC, AUPRC and FPR@TPR0.99 "
                  "from score histograms (100 bins per decade), threshold metrics from exact counts",
        "nodes": nodes,
        "mean_over_nodes": means,
        "pooled": pooled,
        "families": {f: pooled_metrics(benign, hist, flagged_benign, caught) for f, (hist, caught) in
                     sorted(families.items())},
        "counts": {"benign_test": int(np.sum(benign)), "attack": int(np.sum(attack))},
        "few_rows": few_rows({name: n for name, n in nodes.items() if "validation" in n}, fpr_target),
        "not_evaluated": failures,
    }


def released_views(grid: Grid, config: FedCLConfig, arrays: list[np.ndarray], reference: np.ndarray | None,
                   timeout: float) -> tuple[dict[str, tuple[int, ArrayRecord]], list[str]]:
    """Each node's federation view (message type ``query.release``, :func:`node_view`) by node name, with the
    Flower id of the node it came from: what the server relays to the other nodes under ``acceptance_margin``;
    and why the others released none (no answer, an error, a second view of one name, a view that cannot score)."""
    messages = [Message(content=RecordDict({"arrays": ArrayRecord(arrays), "config": config_record(config, reference)}),
                        message_type=RELEASE, dst_node_id=node)
                for node in grid.get_node_ids()]
    replies, failures = _exchange(grid, messages, timeout)
    views = {}
    for reply in replies:
        source = reply.metadata.src_node_id
        try:
            name, _ = read_node_record(reply.content)
            fault = _view_fault(reply.content[VIEW_KEY].to_torch_state_dict(), config.embedding_dim)
            if fault or name in views:
                raise ValueError(fault or f"a second view named {name}")
            views[name] = (source, reply.content[VIEW_KEY])
        except (KeyError, TypeError, ValueError) as why:
            failures.append(f"node {source}: {why}")
    for failure in failures:
        logging.getLogger("flwr").warning("release: %s", failure)
    return views, failures


def _exchange(grid: Grid, messages: list[Message], timeout: float) -> tuple[list[Message], list[str]]:
    """Send ``messages``; the replies without error, and why the other nodes gave none (their error, or no answer)."""
    replies, failures, answered = [], [], set()
    for reply in grid.send_and_receive(messages, timeout=timeout):
        answered.add(reply.metadata.src_node_id)
        if reply.has_error():
            failures.append(f"node {reply.metadata.src_node_id}: {reply.error.reason}")
        else:
            replies.append(reply)
    failures += [f"node {m.metadata.dst_node_id}: no accepted answer within {timeout:g} s" for m in messages
                 if m.metadata.dst_node_id not in answered]
    return replies, failures


def _view_fault(state: dict, embedding_dim: int) -> str:
    """Why a released view cannot score for its peers ("" if it can): what scoring reads, finite, of the
    federation's embedding size, with a positive alarm line (a view with NaN or no line would accept rows silently)."""
    missing = sorted({"scaler_mean", "scaler_scale", "mean", "std", "references", "threshold"} - set(state))
    if missing:
        return f"no {', '.join(missing)}"
    if not all(bool(v.isfinite().all()) for v in state.values()):
        return "values that are not finite"
    if state["references"].ndim != 2 or state["references"].shape[1] != embedding_dim or len(state["references"]) < 1:
        return f"references that are not (count, {embedding_dim})"
    if not float(state["threshold"]) > 0:
        return "a threshold that is not positive"
    return ""


def evaluate_fleet(grid: Grid, config: FedCLConfig, arrays: list[np.ndarray], reference: np.ndarray | None,
                   out_dir: Path, history: list[dict], timeout: float) -> dict:
    """Ask every node to evaluate θ = ``arrays`` on its rows; write fleet.json, fleet.md and fleet_roc.png.

    A node that does not answer within ``timeout`` seconds, or answers with an error, is listed under
    ``not_evaluated`` (with Flower's reason) and left out of the means and pooled metrics. Under
    ``acceptance_margin`` the nodes first release their federation views (:func:`released_views`, the same
    timeout), and each evaluate message carries the other nodes' views.
    """
    peers, unreleased = released_views(grid, config, arrays, reference, timeout) if config.acceptance_margin else ({}, [])

    def content(node: int) -> RecordDict:  # each node gets the others' views
        views = {f"{PEER_PREFIX}{name}": view for name, (source, view) in peers.items() if source != node}
        return RecordDict({"arrays": ArrayRecord(arrays), "config": config_record(config, reference), **views})

    messages = [Message(content=content(node), message_type=MessageType.EVALUATE, dst_node_id=node)
                for node in grid.get_node_ids()]
    answers, failures = _exchange(grid, messages, timeout)
    kept, names = [], set()
    for reply in (answer.content for answer in answers):
        why = _malformed(reply, names)
        if why:
            failures.append(f"a reply left out: {why}")
        else:
            kept.append(reply)
            names.add(read_node_record(reply)[0])
    replies = sorted(kept, key=lambda r: read_node_record(r)[1])
    for failure in failures:
        logging.getLogger("flwr").warning("evaluation: %s", failure)
    summary = _summary(replies, failures, history, config.fpr_target)
    if config.acceptance_margin:
        summary["acceptance"] = {"margin": config.acceptance_margin, "views_released": sorted(peers),
                                 "not_released": unreleased}
    (out_dir / FLEET_FILE).write_text(json.dumps(summary, indent=2))
    from fedcl.eval.report import write_fleet_report  # matplotlib only when a report is written

    write_fleet_report(out_dir, config, summary, {read_node_record(r)[0]: dict(r[HISTOGRAMS_KEY]) for r in replies})
    return summary
