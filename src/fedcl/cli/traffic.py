"""`fedcl features`: a packet capture to an N-BaIoT feature file (CSV or Parquet); `fedcl data simulate`:
the simulated IoT network."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from fedcl.cli.errors import bad_input_exits_2, cannot_write, command_group
from fedcl.data import DataError
from fedcl.traffic import CaptureReader, FeatureExtractor, FeatureWriter, pass_aligned_chunks

__all__ = ["data_app", "features_command", "simulate_command"]

data_app = command_group("Data sets: the simulated IoT network.")

_BATCH = 8192


def features_command(
    capture: Annotated[Path, typer.Argument(help="pcap or pcapng capture of Ethernet frames.")],
    output: Annotated[Path, typer.Argument(help="File to write, one row per packet, the 115 N-BaIoT columns: "
                                                "Parquet if its name ends in .parquet, else CSV.")],
    first_jitter_from_epoch: Annotated[bool, typer.Option(
        "--first-jitter-from-epoch",
        help="Measure a channel's first inter-arrival from time zero, as the original N-BaIoT "
             "extractor did (HH_jit means ≈ Unix time: clock leakage).")] = False,
) -> None:
    """Extract the 115 N-BaIoT features of every packet of a capture into a CSV or Parquet file.

    A truncated or corrupt capture keeps the rows of the packets read before the damage,
    then fails with a one-line error (fedcl.data.DataError) giving the number of packets read.
    A file that is not a capture at all writes nothing.
    """
    reader = CaptureReader(capture)
    extractor = FeatureExtractor(first_jitter_from_epoch=first_jitter_from_epoch)
    # Chunks end where the extractor's passes do: the rows equal one pass over the capture, and fedcl detect's.
    chunks = pass_aligned_chunks(reader, _BATCH, extractor)
    chunk = next(chunks)  # a non-capture file fails here, before output exists
    damage = None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        out = FeatureWriter(output)
    except OSError as e:  # a folder, or no permission: the user's to fix
        raise cannot_write(output, e) from None
    with out, Progress(
        TextColumn("[bold]packets[/bold] {task.fields[packets]:,}"), BarColumn(), DownloadColumn(),
        TimeElapsedColumn(), console=Console(stderr=True), transient=False,
    ) as progress:
        task = progress.add_task("features", total=max(reader.size, 1), packets=0)
        while True:
            if chunk:
                out.write(extractor.extract(chunk))
            progress.update(task, completed=reader.offset, packets=reader.n_packets)
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except DataError as e:  # the packets before the damage are written; then the one-line error
                damage = e
                break
    if damage is not None:
        raise DataError(f"{damage.reason}; wrote the rows of those {reader.n_packets} packets to {output}",
                        path=capture)
    typer.echo(f"{reader.n_packets} packets → {output}")


def simulate_command(
    out: Annotated[Path, typer.Argument(help="Folder to write: <Device>/benign_traffic.{pcap,csv}, "
                                             "<Device>/{gafgyt,mirai}_attacks/*.{pcap,csv}, SIMULATION.json.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and scale write identical files.")] = 0,
    scale: Annotated[float, typer.Option(help="Size: seconds of benign capture and attack packets scale with it "
                                              "(1.0 ≈ 120,000 rows, about 10-20 s).")] = 1.0,
) -> None:
    """Simulate a nine-device IoT network (benign, Mirai, BASHLITE) into pcaps and N-BaIoT feature CSVs.

    The output is in the UCI per-device layout, readable with `fedcl.data.read_dataset(out, "uci")`.
    """
    from fedcl.default_data import simulate_into
    from fedcl.errors import ConfigError

    if seed < 0 or not 0 < scale < math.inf:
        raise ConfigError(f"--seed {seed} --scale {scale:g}: give a seed ≥ 0 and a finite scale > 0")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "SIMULATION.json").is_file():
        raise ConfigError(f"{out}: holds files of its own (not an earlier simulation); give a new or empty folder")
    with Progress(TextColumn("[bold]simulate[/bold] {task.fields[label]}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} captures"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("simulate", total=None, label="")

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, label=label)

        simulate_into(out, seed=seed, scale=scale, progress=progress)
    meta = json.loads((out / "SIMULATION.json").read_text(encoding="utf-8"))
    typer.echo(f"{len(meta['files'])} captures, {meta['rows']:,} rows → {out}")


data_app.command("simulate")(bad_input_exits_2(simulate_command))
