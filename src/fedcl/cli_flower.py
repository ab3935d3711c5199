"""`fedcl flower ...`: the same federation on Flower, in-process or deployed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from fedcl._cli_errors import bad_input_exits_2
from fedcl.config import FedCLConfig, load_config

flower_app = typer.Typer(help="Run fedcl on Flower: in one process, or as a SuperLink with SuperNodes.",
                         no_args_is_help=True)


@flower_app.command("simulate")
@bad_input_exits_2
def simulate_command(
    data: Annotated[str, typer.Option(help="Data folder; every node in it becomes a Flower node.")],
    out: Annotated[Path, typer.Option(help="Run directory (checkpoint, history, model).")] = Path("runs/flower"),
    config: Annotated[Path | None, typer.Option(help="TOML file with FedCLConfig keys.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run directory's last checkpoint.")] = False,
) -> None:
    """Run the Flower ServerApp and ClientApps in this process (no servers), then evaluate."""
    from fedcl import pipeline
    from fedcl.federated.flower import InProcessGrid, run_server
    from fedcl.federated.flower.client_app import app as client_app

    cfg = (load_config(config) if config else FedCLConfig()).updated(data=data, rounds=rounds, seed=seed)
    names = [s.name for s in pipeline.load_splits(cfg)]
    logging.getLogger("flwr").setLevel(logging.WARNING)
    nodes = [{"data-path": data, "node-name": name, "partition-id": i} for i, name in enumerate(names)]
    run_server(InProcessGrid(client_app, nodes), cfg, out, min_nodes=len(nodes), resume=resume)
    summary = pipeline.evaluate(out, data=data)
    typer.echo(f"pooled AUROC {summary['pooled']['auroc']:.4f}; report: {out / 'report.md'}")
