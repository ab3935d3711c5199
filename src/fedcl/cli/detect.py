"""`fedcl detect`: score a capture or a feature file with one node's detector; `fedcl export`: bundle it for a
gateway."""

from __future__ import annotations

import contextlib
import itertools
import sys
from pathlib import Path
from typing import Annotated

import typer

from fedcl.cli.errors import bad_input_exits_2, cannot_write
from fedcl.errors import ConfigError

_STDOUT = Path("-")


@bad_input_exits_2
def detect_command(
    traffic: Annotated[Path | None, typer.Argument(
        help="A pcap/pcapng capture, or a CSV with header: the 115 N-BaIoT features, or the columns a --schema "
             "auto run was trained on. Not with --interface.")] = None,
    interface: Annotated[str | None, typer.Option(
        help="Capture live from this network interface instead of reading TRAFFIC, until SIGINT or SIGTERM "
             "(root or CAP_NET_RAW; docs/gateway.md).")] = None,
    model: Annotated[Path | None, typer.Option(
        help="Run directory written by `fedcl train` (default: runs/latest).")] = None,
    node: Annotated[str | None, typer.Option(help="The node (device) the traffic belongs to.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="A bundle written by `fedcl export`, instead of --model: "
                                                     "scores with ONNX Runtime, without torch.")] = None,
    window: Annotated[int | None, typer.Option(
        help="Vote window w (default: the node's, chosen on benign validation rows).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="CSV of per-packet scores and alerts (default: TRAFFIC's or IFACE's name .alerts.csv, in the current "
             "directory).")] = None,
    alerts: Annotated[Path | None, typer.Option(help="JSON lines, one per alarm episode (docs/gateway.md); "
                                                     "- for stdout, the summary then goes to stderr.")] = None,
    schema: Annotated[str | None, typer.Option(
        help="nbaiot | auto: fail unless the model was trained with this schema (default: the model's).")] = None,
) -> None:
    """Score traffic with one node's detector: per-packet alerts, a majority vote over w packets, a summary."""
    if (traffic is None) == (interface is None):
        raise ConfigError("give a traffic file or --interface, not both" if traffic else
                          "give a traffic file, or --interface to capture live")
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
    # In the current directory: beside the input, it would land in a data folder and be read as traffic.
    out = out or Path(f"{traffic.stem if traffic else interface}.alerts.csv")
    # Output is written while the input is still read: one file in two roles would destroy it.
    written = [p.resolve() for p in (out, alerts) if p not in (None, _STDOUT)]
    if len(set(written)) < len(written) or (traffic and traffic.resolve() in written):
        raise ConfigError("--out, --alerts and the traffic file must be three different files")
    from fedcl import detect

    scorer = detect.from_bundle(bundle, node) if bundle else detect.from_run(model or Path("runs/latest"), node)
    w = window or scorer.window
    json_on_stdout = alerts == _STDOUT  # stdout then carries the JSON lines alone
    if interface is not None:
        if tuple(scorer.columns) != detect.COLUMNS:
            raise ConfigError(f"live capture gives N-BaIoT's 115 features, but the model reads "
                              f"{len(scorer.columns)} columns of a feature table (--schema auto)")
        summary, n_episodes, captured = _live(scorer, w, interface, out, alerts)
    else:
        frames = detect.detect_chunks(scorer.detector, detect.read_traffic_chunks(traffic, scorer.columns), w,
                                      guard=scorer.leakage_guard)
        first = next(frames)  # input that is not a capture or a table fails here, before any output exists
        summary, n_episodes = _stream(scorer, w, itertools.chain([first], frames), out, alerts, traffic)
        captured = []
    for line in summary.lines() + captured:
        typer.echo(line, err=json_on_stdout)
    typer.echo(f"alerts: {out}", err=json_on_stdout)
    if alerts is not None:
        typer.echo(f"alarm episodes: {n_episodes:,} ({'stdout' if json_on_stdout else alerts})", err=json_on_stdout)


#: Seconds of silence after which a live channel's alarm episode ends (it may be the attack's last packet).
_EPISODE_IDLE = 10.0


def _live(scorer, window: int, interface: str, out: Path, alerts: Path | None) -> tuple:
    """Capture, score and write as :func:`_stream` until SIGINT or SIGTERM; the summary gains the capture's
    counts. An alarm episode also ends once its channel has been silent for ``_EPISODE_IDLE`` s."""
    from fedcl.detect import live_chunks
    from fedcl.traffic import LiveCapture, stop_capture_on_signals

    with LiveCapture(interface) as capture, stop_capture_on_signals(capture):  # a bad interface fails before any output
        frames = live_chunks(scorer.detector, capture.batches(), window, guard=scorer.leakage_guard)
        summary, n_episodes = _stream(scorer, window, frames, out, alerts, Path(interface), idle=_EPISODE_IDLE)
    received, dropped, if_dropped = capture.stats()
    return summary, n_episodes, [f"interface {interface}: {received:,} packets received, {dropped:,} dropped by "
                                 f"the kernel, {if_dropped:,} by the interface, {capture.n_skipped:,} runts skipped"]


def _stream(scorer, window: int, frames, out: Path, alerts: Path | None, traffic: Path,
            idle: float | None = None) -> tuple:
    """Write each scored frame's CSV rows and finished alarm episodes as they come (flushed, so an interrupt
    or damage keeps them); return the summary and the number of episodes. ``idle``: as
    :class:`fedcl.edge.EpisodeBuilder`'s."""
    from fedcl.data import DataError
    from fedcl.detect import AlertSummary, alert_lines
    from fedcl.edge import EpisodeBuilder

    summary = AlertSummary(window)
    builder = EpisodeBuilder(window, node=scorer.node, threshold=scorer.detector.threshold_, model=scorer.model,
                             idle=idle)
    n_episodes = 0

    def emit(episodes: list[dict]) -> None:
        nonlocal n_episodes
        n_episodes += len(episodes)
        lines = "".join(line + "\n" for line in alert_lines(episodes))
        if sink is not None and lines:
            sink.write(lines)
            sink.flush()

    written, whole = 0, True  # rows in the CSV; whether the builder has taken each frame whole
    with _open_for_writing(out) as table, _alerts_sink(alerts) as sink:
        try:
            for i, frame in enumerate(frames):
                frame.to_csv(table, header=i == 0, index_label="packet")
                table.flush()
                written += len(frame)
                summary.update(frame)
                if alerts is not None:
                    whole = False
                    episodes = builder.update(frame)
                    whole = True
                    emit(episodes)
        except DataError as e:  # a damaged capture: keep what its intact packets gave
            emit(builder.close() if alerts is not None else [])
            raise DataError(f"{e.reason}; wrote the rows of those {written} packets to {out}",
                            path=traffic) from None
        except KeyboardInterrupt:
            if alerts is not None and whole:
                emit(builder.close())  # episodes still going end at the interruption
            typer.echo(f"interrupted: wrote the rows of the first {written:,} packets to {out}", err=True)
            raise typer.Exit(130) from None
        if alerts is not None:
            emit(builder.close())
    return summary, n_episodes


def _open_for_writing(path: Path):
    """``path`` opened for text as pandas writes a CSV; a folder or a missing directory is the user's to fix."""
    try:
        return path.open("w", encoding="utf-8", newline="")
    except OSError as e:
        raise cannot_write(path, e) from None


@contextlib.contextmanager
def _alerts_sink(alerts: Path | None):
    """Where the JSON lines go: nowhere (None), stdout (-) or a file."""
    if alerts is None:
        yield None
    elif alerts == _STDOUT:
        yield _Echo()
    else:
        with _open_for_writing(alerts) as f:
            yield f


class _Echo:
    """stdout through typer (CliRunner captures it), as a file."""

    def write(self, text: str) -> None:
        typer.echo(text, nl=False)

    def flush(self) -> None:
        sys.stdout.flush()


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
