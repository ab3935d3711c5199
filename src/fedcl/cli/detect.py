"""`fedcl detect`: score a capture or a feature file with one node's detector; `fedcl export`: bundle it for a
gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedcl.cli.errors import bad_input_exits_2
from fedcl.errors import ConfigError

_STDOUT = Path("-")


@bad_input_exits_2
def detect_command(
    traffic: Annotated[Path, typer.Argument(help="A pcap/pcapng capture, or a CSV with header: the 115 N-BaIoT "
                                                 "features, or the columns a --schema auto run was trained on.")],
    model: Annotated[Path | None, typer.Option(
        help="Run directory written by `fedcl train` (default: runs/latest).")] = None,
    node: Annotated[str | None, typer.Option(help="The node (device) the traffic belongs to.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="A bundle written by `fedcl export`, instead of --model: "
                                                     "scores with ONNX Runtime, without torch.")] = None,
    window: Annotated[int | None, typer.Option(
        help="Vote window w (default: the node's, chosen on benign validation rows).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="CSV of per-packet scores and alerts (default: TRAFFIC.alerts.csv).")] = None,
    alerts: Annotated[Path | None, typer.Option(help="JSON lines, one per alarm episode (docs/gateway.md); "
                                                     "- for stdout, the summary then goes to stderr.")] = None,
    schema: Annotated[str | None, typer.Option(
        help="nbaiot | auto: fail unless the model was trained with this schema (default: the model's).")] = None,
) -> None:
    """Score traffic with one node's detector: per-packet alerts, a majority vote over w packets, a summary."""
    if window is not None and window < 1:
        raise ConfigError("--window must be >= 1")
    if model is not None and bundle is not None:
        raise ConfigError("give --model or --bundle, not both")
    if schema is not None and bundle is not None and schema != "nbaiot":
        raise ConfigError(f"a bundle holds an N-BaIoT model; --schema {schema} needs --model")
    if schema is not None and bundle is None:
        from fedcl.rundir import check_schema

        check_schema(model or Path("runs/latest"), schema)
    if alerts not in (None, _STDOUT) and not alerts.parent.is_dir():
        raise ConfigError(f"{alerts}: no such directory for the alerts file (--alerts)")
    from fedcl import detect
    from fedcl.edge import alert_episodes

    scorer = detect.from_bundle(bundle, node) if bundle else detect.from_run(model or Path("runs/latest"), node)
    w = window or scorer.window
    features, info = detect.read_traffic(traffic, scorer.columns)
    result = detect.detect(scorer.detector, features, info, w, guard=scorer.leakage_guard)
    out = out or traffic.with_suffix(".alerts.csv")
    result.to_csv(out, index_label="packet")
    json_on_stdout = alerts == _STDOUT  # stdout then carries the JSON lines alone
    for line in detect.summarise_alerts(result, w):
        typer.echo(line, err=json_on_stdout)
    typer.echo(f"alerts: {out}", err=json_on_stdout)
    if alerts is None:
        return
    episodes = alert_episodes(result, w, node=scorer.node, threshold=scorer.detector.threshold_, model=scorer.model)
    lines = detect.alert_lines(episodes)
    if json_on_stdout:
        for line in lines:
            typer.echo(line)
    else:
        alerts.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    typer.echo(f"alarm episodes: {len(episodes):,} ({'stdout' if json_on_stdout else alerts})", err=json_on_stdout)


@bad_input_exits_2
def export_command(
    out: Annotated[Path, typer.Option(help="New (or empty) directory for the bundle.")],
    model: Annotated[Path, typer.Option(help="Run directory written by `fedcl train`.")] = Path("runs/latest"),
    node: Annotated[str | None, typer.Option(
        help="The node whose detector to export (needed if the run has several).")] = None,
) -> None:
    """Write one node's detector as a bundle a gateway scores without torch (`fedcl detect --bundle`)."""
    from fedcl.detect import require_training_install
    from fedcl.edge import load_bundle

    require_training_install("fedcl export")
    from fedcl.export import export_node
    from fedcl.rundir import load_run_config

    if load_run_config(model).schema != "nbaiot":
        raise ConfigError(f"{model}: the run reads a feature table (--schema auto); bundles hold N-BaIoT models only")

    written = export_node(model, node, out)
    bundle = load_bundle(written)  # what a gateway will read: check it reads
    typer.echo(f"bundle of node {bundle.node!r} (window {bundle.window}, threshold {bundle.threshold_:.6g}): {written}")
    typer.echo(f"content hash {bundle.content_hash}")
