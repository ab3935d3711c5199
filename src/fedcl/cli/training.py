"""`fedcl train`, `fedcl run` and `fedcl evaluate`: federated training, held-out metrics and the report."""

from __future__ import annotations

import functools
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedcl.cli.errors import bad_input_exits_2
from fedcl.config import AGGREGATIONS, FedCLConfig, load_config
from fedcl.rundir import MODEL_FILE, REPORT_FILE
from fedcl.signals import handling

_err = Console(stderr=True)

# Options the Flower commands take too.
SecureAggregation = Annotated[bool | None, typer.Option("--secure-aggregation/--no-secure-aggregation", help="Mask each node's update: the server learns only weighted sums (with --aggregation dynamic or fedavg; docs/privacy.md).")]
DpEpsilon = Annotated[float | None, typer.Option(help="Differential privacy: the whole run spends at most this ε per node (inf: off, the default; docs/privacy.md); record level (DP-SGD with Opacus) unless --dp-level node.")]
DpDelta = Annotated[float | None, typer.Option(help="δ of --dp-epsilon (default 1e-5).")]
DpLevel = Annotated[str | None, typer.Option(help="record (default): a row of a node's window is the unit | node: a whole node, DP-FedAvg over clipped updates (with --aggregation fedavg).")]
DpSampleRate = Annotated[float | None, typer.Option(help="--dp-level node: share of nodes the server samples each round (Poisson; default 1).")]
DpUpdateClip = Annotated[float | None, typer.Option(help="--dp-level node: ℓ2 clip S of a node's update (default 0.5).")]
CompressionBits = Annotated[int | None, typer.Option(help="Send θ at this many bits per parameter each way (2..8; block-wise quantisation with error feedback; 0: float32, the default; docs/speed.md#communication).")]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops training as Ctrl-C does: with a line on what the checkpoint keeps


def print_summary(summary: dict, run_dir: Path) -> None:
    """The pooled figures of an evaluation, or plainly what could not be computed and why."""
    pooled, counts = summary["pooled"], summary["counts"]
    if counts["attack"] == 0:
        typer.echo(f"no attack rows in the test data: AUROC, AUPRC, recall and FPR@TPR0.99 need them; "
                   f"computed on {counts['benign_test']:,} benign test rows: FPR {pooled['fpr']:.4f}")
    elif counts["benign_test"] == 0:
        typer.echo(f"no benign test rows: AUROC, AUPRC and FPR need them; "
                   f"computed on {counts['attack']:,} attack rows: recall {pooled['recall']:.4f}")
    else:
        shown = ", ".join(f"{k} {pooled[k]:.4f}" for k in ("auroc", "auprc", "fpr_at_tpr99", "f1"))
        typer.echo(f"pooled: {shown}")
    note_few_rows(summary)
    typer.echo(f"report: {run_dir / REPORT_FILE}")


def note_few_rows(summary: dict) -> None:
    """One line on stderr when some nodes' threshold or figures rest on few benign rows (the report names them)."""
    if summary.get("few_rows"):
        typer.echo(f"note: {len(summary['few_rows'])} node(s) with few benign rows, whose threshold or figures are "
                   "coarse (report.md, per node)", err=True)


def _guard(leakage_guard: str | None, no_leakage_guard: bool, schema: str) -> str | None:
    """The --leakage-guard to apply: off for --no-leakage-guard, and by default for a table other than N-BaIoT."""
    if no_leakage_guard or (leakage_guard is None and schema != "nbaiot"):
        return "off"  # the guard masks N-BaIoT's HH_jit columns, which a flow table does not have
    return leakage_guard


def _columns_line(split) -> str:
    """Which columns a schema-auto run reads and which of the header it dropped, in one line."""
    line = f"schema auto: {len(split.columns)} numeric columns used: {', '.join(split.columns)}"
    if split.dropped_columns:
        line += f"; {len(split.dropped_columns)} dropped (text or empty): {', '.join(split.dropped_columns)}"
    return line


def round_info(record: dict) -> str:
    """The progress bar's note on a round: its loss, or under differential privacy (losses not sent) the ε spent."""
    if "epsilon" in record:
        return f"ε spent {record['epsilon']:.3g}"
    return f"loss {record['loss']:.4f}"


Schema = Annotated[str | None, typer.Option(
    help="nbaiot (N-BaIoT's 115 named columns, the default) | auto (the numeric columns of any header, e.g. a "
         "CICFlowMeter or Zeek flow table; no leakage guard; docs/feature-tables.md).")]


@bad_input_exits_2
def train_command(
    data: Annotated[str | None, typer.Option(help="Data folder (UCI, Kaggle or client layout) of N-BaIoT rows, or "
                                                  "of any numeric feature table with --schema auto; default: the "
                                                  "simulated network (made on first use).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory to write.")] = Path("runs/latest"),
    config: Annotated[Path | None, typer.Option(help="TOML file whose keys are option names (with _).")] = None,
    layout: Annotated[str | None, typer.Option(help="auto | uci | kaggle | clients.")] = None,
    schema: Schema = None,
    leakage_guard: Annotated[str | None, typer.Option(help="strict (mask every jitter mean/variance, the default) | on (mask epoch-like jitter only) | off.")] = None,
    no_leakage_guard: Annotated[bool, typer.Option("--no-leakage-guard", help="Same as --leakage-guard off; for comparison only.")] = False,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds.")] = None,
    local_epochs: Annotated[int | None, typer.Option(help="Local epochs per round (at least; see --min-rows-per-round).")] = None,
    local_steps: Annotated[int | None, typer.Option(help="At most this many local steps per round (0: no bound).")] = None,
    min_rows_per_round: Annotated[int | None, typer.Option(help="In federated training a node of n rows runs ⌈this / n⌉ local epochs a round if that is more than --local-epochs (0: off).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per batch (InfoNCE negatives = batch − 1).")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "--tau", help="InfoNCE temperature τ.")] = None,
    consistency_weight: Annotated[float | None, typer.Option("--consistency-weight", "--lambda", help="Weight λ of ‖z̃ − g‖².")] = None,
    embedding_dim: Annotated[int | None, typer.Option(help="Embedding size.")] = None,
    aggregation: Annotated[str | None, typer.Option(help=" | ".join(AGGREGATIONS) + " (default dynamic-guarded; see README).")] = None,
    secure_aggregation: SecureAggregation = None,
    dp_epsilon: DpEpsilon = None,
    dp_delta: DpDelta = None,
    compression_bits: CompressionBits = None,
    dp_clip: Annotated[float | None, typer.Option(help="Per-row gradient clip C of DP-SGD (default 1.0).")] = None,
    dp_level: DpLevel = None,
    dp_sample_rate: DpSampleRate = None,
    dp_update_clip: DpUpdateClip = None,
    node_normalisation: Annotated[bool | None, typer.Option("--node-normalisation/--no-node-normalisation", help="Per-node embedding normalisation.")] = None,
    missing_mask: Annotated[bool | None, typer.Option("--missing-mask/--no-missing-mask", help="The encoder reads which cells are missing (else: imputed to the node mean only).")] = None,
    personalisation: Annotated[str | None, typer.Option(help="tuned (default): each node also trains an encoder on its rows alone and fine-tunes the federation's on them, and combines the three views' scores in a mean weighted per node by how light each view's benign tail is (docs/benchmark.md) | weighted | mean | max: the federation's and the own view only, so weighted, or their plain mean, or max | off: the federation's encoder only.")] = None,
    trim_fraction: Annotated[float | None, typer.Option(help="Leave dense far groups of training rows (at most this share; an infected training window) out of training and references; 0: off (default; docs/results.md).")] = None,
    acceptance_margin: Annotated[float | None, typer.Option(help="A node accepts a row another node's federation view scores below this × its alarm line (0.7 on the development benchmark; each node's view goes to the others: docs/privacy.md); 0: off (default).")] = None,
    acceptance_quorum: Annotated[int | None, typer.Option(help="With --acceptance-margin: accept a row only when this many other nodes' views agree (default 1; all of them when fewer).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (splits, init, augmentations).")] = None,
    resume: Annotated[bool, typer.Option(help="Go on from the checkpoint an interrupted run left in --out (same settings; --rounds may grow).")] = False,
) -> Path:
    """Train a federated detector: config, per-round history and model in the run directory.

    Until the model is saved, --out keeps a checkpoint after every round and node: an interrupted run
    goes on with --resume."""
    base = load_config(config) if config else FedCLConfig()
    cfg = base.updated(
        data=data, layout=layout, schema=schema,
        leakage_guard=_guard(leakage_guard, no_leakage_guard, schema or base.schema),
        rounds=rounds, local_epochs=local_epochs, local_steps=local_steps, min_rows_per_round=min_rows_per_round,
        batch_size=batch_size, lr=lr, temperature=temperature,
        consistency_weight=consistency_weight, embedding_dim=embedding_dim, aggregation=aggregation,
        secure_aggregation=secure_aggregation, dp_epsilon=dp_epsilon, dp_delta=dp_delta, dp_clip=dp_clip,
        dp_level=dp_level, dp_sample_rate=dp_sample_rate, dp_update_clip=dp_update_clip, compression_bits=compression_bits,
        node_normalisation=node_normalisation, missing_mask=missing_mask, personalisation=personalisation,
        trim_fraction=trim_fraction, acceptance_margin=acceptance_margin,
        acceptance_quorum=acceptance_quorum, seed=seed,
    )
    from fedcl import pipeline  # torch is imported only when there is work to do

    pipeline.prepare_run_dir(out)  # an unusable --out fails here, before any work
    if not cfg.data:
        from fedcl.default_data import default_data_dir, ensure_default_data

        _err.print(f"no --data: using the simulated IoT network in {default_data_dir()}")
        cfg = cfg.updated(data=str(ensure_default_data()))
    splits = pipeline.load_splits(cfg)  # bad data fails here, before any progress bar
    pipeline.check_trainable(splits, cfg)
    checkpoint = pipeline.open_checkpoint(out, cfg, splits, resume)  # a run it would overwrite, or cannot go on from, fails here
    if cfg.schema != "nbaiot":
        _err.print(_columns_line(splits[0]), markup=False, highlight=False, soft_wrap=True)
    rounds_done, nodes_done = checkpoint.progress(cfg.rounds)
    try:
        with handling(_interrupt, [signal.SIGTERM]), \
             Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=_err) as progress:
            rounds = progress.add_task("federated rounds", total=cfg.rounds, completed=rounds_done, info="loss –")
            nodes = progress.add_task("node detectors", total=len(splits), completed=nodes_done, info="")
            run_dir = pipeline.train(
                cfg, out, splits=splits, checkpoint=checkpoint,
                on_round=lambda h: progress.update(rounds, completed=h["round"], info=round_info(h)),
                on_node=lambda name, _: progress.update(nodes, advance=1, info=name))
    except KeyboardInterrupt:
        rounds_done, nodes_done = checkpoint.progress(cfg.rounds)
        kept = (f"{out} keeps {rounds_done} of {cfg.rounds} round(s) and {nodes_done} of {len(splits)} node "
                "detector(s); the same command with --resume goes on") if rounds_done else "before the first round ended"
        _err.print(f"interrupted: {kept}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    typer.echo(f"model: {run_dir / MODEL_FILE}")
    return run_dir


@bad_input_exits_2
@functools.wraps(train_command, assigned=("__module__", "__annotations__"))  # the same options as train
def run_command(**options) -> None:
    """Train a federated detector, then score held-out rows: metrics.json, scores.csv and report.md."""
    from fedcl import pipeline

    run_dir = train_command(**options)
    print_summary(pipeline.evaluate(run_dir), run_dir)


@bad_input_exits_2
def evaluate_command(
    out: Annotated[Path, typer.Option(help="Run directory written by `fedcl train`.")] = Path("runs/latest"),
    data: Annotated[str | None, typer.Option(help="Data folder, if it moved since training.")] = None,
    schema: Annotated[str | None, typer.Option(
        help="nbaiot | auto: fail unless the run was trained with this schema (default: the run's).")] = None,
) -> None:
    """Score held-out rows with a trained run; write metrics.json, scores.csv and report.md.

    The data must have the columns the run's model was trained on."""
    from fedcl import pipeline
    from fedcl.rundir import check_schema

    if schema is not None:
        check_schema(out, schema)
    print_summary(pipeline.evaluate(out, data=data), out)
