"""`fedcl` command line: run, train, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedcl.config import FedCLConfig, load_config
from fedcl._cli_errors import bad_input_exits_2
from fedcl.cli_experiment import experiment_app
from fedcl.cli_flower import flower_app
from fedcl.traffic_cli import features_command, simulate_command
from fedcl.rundir import MODEL_FILE, REPORT_FILE

app = typer.Typer(help="Federated contrastive anomaly detection on IoT network traffic.",
                  no_args_is_help=True, add_completion=False)
err = Console(stderr=True)
app.add_typer(flower_app, name="flower")
app.command("features")(bad_input_exits_2(features_command))
data_app = typer.Typer(help="Data sets: the simulated IoT network.", no_args_is_help=True)
data_app.command("simulate")(bad_input_exits_2(simulate_command))
app.add_typer(data_app, name="data")
app.add_typer(experiment_app, name="experiment")


def _print_summary(summary: dict, run_dir: Path) -> None:
    pooled = summary["pooled"]
    shown = ", ".join(f"{k} {pooled[k]:.4f}" for k in ("auroc", "auprc", "fpr_at_tpr99", "f1") if pooled[k] is not None)
    typer.echo(f"pooled: {shown}")
    typer.echo(f"report: {run_dir / REPORT_FILE}")


@app.command("train")
@app.command("run")
@bad_input_exits_2
def train_command(
    ctx: typer.Context,
    data: Annotated[str | None, typer.Option(help="N-BaIoT data folder (UCI, Kaggle or client layout); "
                                                  "default: the simulated network (made on first use).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory to write.")] = Path("runs/latest"),
    config: Annotated[Path | None, typer.Option(help="TOML file whose keys are option names (with _).")] = None,
    layout: Annotated[str | None, typer.Option(help="auto | uci | kaggle | clients.")] = None,
    leakage_guard: Annotated[str | None, typer.Option(help="on (mask epoch-like jitter) | strict (mask all jitter mean/variance) | off.")] = None,
    no_leakage_guard: Annotated[bool, typer.Option("--no-leakage-guard", help="Same as --leakage-guard off; for comparison only.")] = False,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds.")] = None,
    local_epochs: Annotated[int | None, typer.Option(help="Local epochs per round.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per batch (InfoNCE negatives = batch − 1).")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "--tau", help="InfoNCE temperature τ.")] = None,
    consistency_weight: Annotated[float | None, typer.Option("--consistency-weight", "--lambda", help="Weight λ of ‖z̃ − g‖².")] = None,
    embedding_dim: Annotated[int | None, typer.Option(help="Embedding size.")] = None,
    aggregation: Annotated[str | None, typer.Option(help="dynamic (w_i = 1/(1+d_i)) | dynamic-guarded (clipped, screened, d_i floored) | fedavg (by sample count) | median | trimmed-mean | krum | multi-krum.")] = None,
    node_normalisation: Annotated[bool | None, typer.Option("--node-normalisation/--no-node-normalisation", help="Per-node embedding normalisation.")] = None,
    missing_mask: Annotated[bool | None, typer.Option("--missing-mask/--no-missing-mask", help="The encoder reads which cells are missing (else: imputed to the node mean only).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (splits, init, augmentations).")] = None,
) -> None:
    """Train a federated detector (`train`), or train then evaluate and report (`run`)."""
    base = load_config(config) if config else FedCLConfig()
    cfg = base.updated(
        data=data, layout=layout, leakage_guard="off" if no_leakage_guard else leakage_guard,
        rounds=rounds, local_epochs=local_epochs, batch_size=batch_size, lr=lr, temperature=temperature,
        consistency_weight=consistency_weight, embedding_dim=embedding_dim, aggregation=aggregation,
        node_normalisation=node_normalisation, missing_mask=missing_mask, seed=seed,
    )
    from fedcl import pipeline  # torch is imported only when there is work to do

    if not cfg.data:
        from fedcl.default_data import default_data_dir, ensure_default_data

        err.print(f"no --data: using the simulated IoT network in {default_data_dir()}")
        cfg = cfg.updated(data=str(ensure_default_data()))
    splits = pipeline.load_splits(cfg)  # bad data fails here, before any progress bar
    with Progress(TextColumn("[bold]federated rounds"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("rounds", total=cfg.rounds, loss="–")
        run_dir = pipeline.train(cfg, out, splits=splits,
                                 on_round=lambda h: progress.update(task, advance=1, loss=f"{h['loss']:.4f}"))
    typer.echo(f"model: {run_dir / MODEL_FILE}")
    if ctx.info_name == "run":
        _print_summary(pipeline.evaluate(run_dir), run_dir)


@app.command("detect")
@bad_input_exits_2
def detect_command(
    traffic: Annotated[Path, typer.Argument(help="A pcap/pcapng capture, or a CSV of the 115 features with header.")],
    model: Annotated[Path, typer.Option(help="Run directory written by `fedcl train`.")] = Path("runs/latest"),
    node: Annotated[str | None, typer.Option(help="The node (device) the traffic belongs to.")] = None,
    window: Annotated[int | None, typer.Option(help="Vote window w (default: the node's, chosen on benign validation rows).")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV of per-packet scores and alerts (default: TRAFFIC.alerts.csv).")] = None,
) -> None:
    """Score traffic with one node's detector: per-packet alerts, a majority vote over w packets, a summary."""
    from fedcl import detect, pipeline

    config = pipeline.load_run_config(model)
    detectors = pipeline.load_detectors(model)
    if node is None and len(detectors) != 1:
        raise ValueError(f"the model has {len(detectors)} nodes; choose one with --node ({', '.join(detectors)})")
    node = node or next(iter(detectors))
    if node not in detectors:
        raise ValueError(f"no node {node!r} in {model} (nodes: {', '.join(detectors)})")
    if window is not None and window < 1:
        raise ValueError("--window must be >= 1")
    w = window or pipeline.load_windows(model).get(node, 1)
    features, info = detect.read_traffic(traffic)
    result = detect.detect(detectors[node], features, info, w, guard=config.leakage_guard)
    out = out or traffic.with_suffix(".alerts.csv")
    result.to_csv(out, index_label="packet")
    for line in detect.summarise_alerts(result, w):
        typer.echo(line)
    typer.echo(f"alerts: {out}")


@app.command("evaluate")
@bad_input_exits_2
def evaluate_command(
    out: Annotated[Path, typer.Option(help="Run directory written by `fedcl train`.")] = Path("runs/latest"),
    data: Annotated[str | None, typer.Option(help="Data folder, if it moved since training.")] = None,
) -> None:
    """Score held-out rows with a trained run; write metrics.json, scores.csv and report.md."""
    from fedcl import pipeline

    _print_summary(pipeline.evaluate(out, data=data), out)


if __name__ == "__main__":  # pragma: no cover
    app()
