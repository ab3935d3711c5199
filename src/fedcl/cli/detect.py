"""`fedcl detect`: score a capture or a feature file with one node's detector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedcl.cli.errors import bad_input_exits_2
from fedcl.errors import ConfigError


@bad_input_exits_2
def detect_command(
    traffic: Annotated[Path, typer.Argument(help="A pcap/pcapng capture, or a CSV of the 115 features with header.")],
    model: Annotated[Path, typer.Option(help="Run directory written by `fedcl train`.")] = Path("runs/latest"),
    node: Annotated[str | None, typer.Option(help="The node (device) the traffic belongs to.")] = None,
    window: Annotated[int | None, typer.Option(help="Vote window w (default: the node's, chosen on benign validation rows).")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV of per-packet scores and alerts (default: TRAFFIC.alerts.csv).")] = None,
) -> None:
    """Score traffic with one node's detector: per-packet alerts, a majority vote over w packets, a summary."""
    if window is not None and window < 1:
        raise ConfigError("--window must be >= 1")
    from fedcl import detect, pipeline

    config = pipeline.load_run_config(model)
    detectors = pipeline.load_detectors(model)
    if node is None and len(detectors) != 1:
        raise ConfigError(f"the model has {len(detectors)} nodes; choose one with --node ({', '.join(detectors)})")
    node = node or next(iter(detectors))
    if node not in detectors:
        raise ConfigError(f"no node {node!r} in {model} (nodes: {', '.join(detectors)})")
    w = window or pipeline.load_windows(model).get(node, 1)
    features, info = detect.read_traffic(traffic)
    result = detect.detect(detectors[node], features, info, w, guard=config.leakage_guard)
    out = out or traffic.with_suffix(".alerts.csv")
    result.to_csv(out, index_label="packet")
    for line in detect.summarise_alerts(result, w):
        typer.echo(line)
    typer.echo(f"alerts: {out}")
