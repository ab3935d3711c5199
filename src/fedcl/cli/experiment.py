"""`fedcl experiment ...`: the comparison table, the ablation table, sensitivity sweeps and heterogeneity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from fedcl.cli.errors import bad_input_exits_2, command_group
from fedcl.config import AGGREGATIONS, FedCLConfig, load_config

experiment_app = command_group("Reproducible experiments: compare, ablation, sweep, heterogeneity, corruption, "
                               "attacks, benchmark, privacy, audit.")

Data = Annotated[str, typer.Option(help="Data folder (e.g. ../shared/data/nbaiot/fedmse-iid).")]
Seeds = Annotated[str, typer.Option(help="Number of seeds n (seeds 0 … n−1), or the seeds themselves, "
                                         "comma-separated: 1,2,3 (one seed: 2,).")]
Quick = Annotated[bool, typer.Option(help="Small slices and 3 rounds: minutes become seconds (for CI).")]
Config = Annotated[Path | None, typer.Option(help="TOML file with FedCLConfig keys.")]
Schema = Annotated[str | None, typer.Option(help="nbaiot (default) | auto: the numeric columns of any header "
                                                 "(a flow table; no leakage guard; docs/feature-tables.md).")]


def _config(data: str, config: Path | None, schema: str | None = None) -> FedCLConfig:
    base = load_config(config) if config else FedCLConfig()
    # As for `fedcl train`: the guard masks N-BaIoT's jitter columns, so another table goes without it.
    guard = "off" if (schema or base.schema) != "nbaiot" else None
    return base.updated(data=data, schema=schema, leakage_guard=guard)


def _nbaiot_only(config: FedCLConfig, what: str) -> None:
    """ConfigError when ``what`` (a part of an experiment that reads N-BaIoT's column names) meets another table."""
    from fedcl.errors import ConfigError

    if config.schema != "nbaiot":
        raise ConfigError(f"{what} read(s) N-BaIoT's named columns; leave it out with --schema {config.schema}")


def _seeds(text: str) -> Sequence[int]:
    """Seeds 0 … n − 1 for a count n, the seeds named for a comma-separated list; or a one-line refusal."""
    from fedcl.errors import ConfigError

    try:
        values = [int(t) for t in _items(text)]
    except ValueError:
        values = []  # refused below, with the forms --seeds takes
    if "," not in text and values:
        if values[0] < 1:
            raise ConfigError(f"--seeds {text}: give at least one seed")
        return range(values[0])
    if not values or min(values) < 0 or len(set(values)) < len(values):
        raise ConfigError(f"--seeds {text!r}: give a number of seeds (3), or distinct seeds ≥ 0 comma-separated "
                          "(1,2,3; one seed: 2,)")
    return values


def _done(report: Path) -> None:
    typer.echo(f"report: {report}")


@experiment_app.command("compare")
@bad_input_exits_2
def compare_command(data: Data, out: Annotated[Path, typer.Option(help="Result folder.")] = Path("runs/compare"),
                    seeds: Seeds = "3", quick: Quick = False, config: Config = None, schema: Schema = None,
                    supervised: Annotated[bool, typer.Option(help="Include the supervised rows.")] = True) -> None:
    """fedcl against every baseline on the same splits: table (Markdown + CSV) and ROC curves."""
    from fedcl.experiments import compare

    cfg = _config(data, config, schema)
    if supervised:
        _nbaiot_only(cfg, "the supervised rows (--no-supervised)")
    _done(compare(cfg, _seeds(seeds), quick, out, progress=typer.echo, supervised=supervised))


@experiment_app.command("ablation")
@bad_input_exits_2
def ablation_command(data: Data, out: Annotated[Path, typer.Option(help="Result folder.")] = Path("runs/ablation"),
                     seeds: Seeds = "3", quick: Quick = False, config: Config = None, schema: Schema = None) -> None:
    """fedcl with each part removed: FedAvg weights, λ = 0, no node normalisation, no federation."""
    from fedcl.experiments import ablation

    _done(ablation(_config(data, config, schema), _seeds(seeds), quick, out, progress=typer.echo))


@experiment_app.command("sweep")
@bad_input_exits_2
def sweep_command(param: Annotated[str, typer.Argument(help="lr (AUROC) or temperature (F1).")], data: Data,
                  out: Annotated[Path, typer.Option(help="Result folder.")] = Path("runs/sweep"),
                  seeds: Seeds = "3", quick: Quick = False, config: Config = None, schema: Schema = None) -> None:
    """fedcl's sensitivity to one hyperparameter (7-point grid), PNG + CSV."""
    from fedcl.experiments import sweep_parameter

    _done(sweep_parameter(param, _config(data, config, schema), _seeds(seeds), quick, out, progress=typer.echo))


@experiment_app.command("heterogeneity")
@bad_input_exits_2
def heterogeneity_command(data: Data,
                          out: Annotated[Path, typer.Option(help="Result folder.")] = Path("runs/heterogeneity"),
                          seeds: Seeds = "3", quick: Quick = False, config: Config = None, schema: Schema = None) -> None:
    """fedcl (dynamic, FedAvg, guarded weights) and the federated autoencoder on natural, Dirichlet(α) and
    quantity-skewed partitions of the same rows: AUROC, FPR@TPR0.99, worst-node AUROC (CSV, PNG, Markdown)."""
    from fedcl.experiments import heterogeneity

    _done(heterogeneity(_config(data, config, schema), _seeds(seeds), quick, out, progress=typer.echo))


def _items(text: str) -> list[str]:
    """The comma-separated items of an option, stripped."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _numbers(text: str, option: str, kind: type) -> list:
    """The comma-separated numbers of an option; ConfigError on one that is not a number of ``kind``."""
    from fedcl.errors import ConfigError

    try:
        return [kind(t) for t in _items(text)]
    except ValueError:
        raise ConfigError(f"--{option} takes comma-separated {kind.__name__}s, got {text!r}") from None


def _data_or_default(data: str | None) -> str:
    """``--data``, or the simulated network (made on first use)."""
    if data:
        return data
    from fedcl.default_data import ensure_default_data

    return str(ensure_default_data())


OptionalData = Annotated[str | None, typer.Option(help="Data folder; default: the simulated network.")]


@experiment_app.command("corruption")
@bad_input_exits_2
def corruption_command(
    data: OptionalData = None,
    out: Annotated[Path, typer.Option(help="Result folder; a rerun resumes from its results.csv.")]
    = Path("runs/corruption"),
    seeds: Seeds = "3", quick: Quick = False, config: Config = None, schema: Schema = None,
    kinds: Annotated[str, typer.Option(help="Corruptions, comma-separated: mcar, missing-streams, row-blocks, "
                                            "noise, contamination.")]
    = "mcar,missing-streams,row-blocks,noise,contamination",
    levels: Annotated[str | None, typer.Option(help="Levels every kind runs at, comma-separated, e.g. 0,0.05 "
                                                    "(default: 0 and each kind's own three).")] = None,
) -> None:
    """AUROC vs missing cells (MCAR), missing stream groups, missing row blocks, noise and attack rows
    in benign training, for fedcl and the baselines (CSV, PNG, Markdown)."""
    from fedcl.experiments import corruption, corruption_plan

    kind_names = _items(kinds)
    level_values = None if levels is None else _numbers(levels, "levels", float)
    corruption_plan(kind_names, level_values)  # bad options fail before the default data are made
    if "missing-streams" in kind_names:
        _nbaiot_only(_config("", config, schema), "the missing-streams corruption (N-BaIoT's stream groups)")
    _done(corruption(_config(_data_or_default(data), config, schema), _seeds(seeds), quick, out, progress=typer.echo,
                     kinds=kind_names, levels=level_values))


@experiment_app.command("attacks")
@bad_input_exits_2
def attacks_command(
    data: OptionalData = None,
    out: Annotated[Path, typer.Option(help="Result folder; a rerun resumes from its results.csv.")]
    = Path("runs/attacks"),
    seeds: Seeds = "3", quick: Quick = False, config: Config = None, schema: Schema = None,
    rules: Annotated[str, typer.Option(help="Server rules, comma-separated (--aggregation names).")]
    = ",".join(AGGREGATIONS),
    behaviours: Annotated[str | None, typer.Option(help="Behaviours of the bad nodes, comma-separated: noisy, "
                                                        "free-rider, sign-flip, scaled, random, lying, alie, ipm, "
                                                        "ipm-large, min-max, min-sum, mimic, targeted, dropout "
                                                        "(default: all).")] = None,
    bad_nodes: Annotated[str | None, typer.Option(help="Numbers of bad nodes, comma-separated, e.g. 0,2 "
                                                       "(default: 0,1,2,3; with --quick 0,1).")] = None,
    target_family: Annotated[str | None, typer.Option(help="Attack family the targeted attack hides (default: "
                                                           "the one on the most nodes, then with the most rows).")]
    = None,
) -> None:
    """AUROC vs faulty or malicious nodes (naive, adaptive and targeted) for each server rule, and under
    30 % dropouts (CSV, PNG, Markdown)."""
    from fedcl.experiments import ATTACK_SCENARIOS, attacks_report, check_attack_grid

    rule_names = _items(rules)
    names = _items(behaviours) if behaviours is not None else list(ATTACK_SCENARIOS)
    counts = None if bad_nodes is None else _numbers(bad_nodes, "bad-nodes", int)
    # bad options fail before the default data are made
    seed_list = _seeds(seeds)
    check_attack_grid(rule_names, names, counts, seed_list, quick)
    _done(attacks_report(_config(_data_or_default(data), config, schema), seed_list, quick, out, progress=typer.echo,
                         rules=rule_names, behaviours=names, bad_nodes=counts, target_family=target_family))


@experiment_app.command("benchmark")
@bad_input_exits_2
def benchmark_command(
    data: Annotated[list[str] | None, typer.Option(help="Data folder (repeat for several); default: the simulated network.")] = None,
    out: Annotated[Path, typer.Option(help="Result folder; a rerun resumes from its results.csv.")] = Path("runs/benchmark"),
    seeds: Seeds = "3", quick: Quick = False, config: Config = None, schema: Schema = None,
    cell: Annotated[list[str] | None, typer.Option(help="Only this cell (repeat for several), e.g. 'natural' or "
                                                    "'natural, 250 train rows'.")] = None,
    method: Annotated[list[str] | None, typer.Option(help="Only this method (repeat for several), e.g. "
                                                      "'fedcl (ours)'.")] = None,
) -> None:
    """fedcl against the baselines that keep rows on their node, on natural, device-like and Dirichlet deals,
    small nodes, unseen devices and (two or more --data) a node of another network joining; no-regret table,
    federation-wide benign FPR (CSV, PNG, Markdown)."""
    from fedcl.experiments import benchmark, named_methods

    methods = named_methods(method or ())  # a mistyped name fails before the default data is simulated
    if not data:
        from fedcl.default_data import ensure_default_data

        data = [str(ensure_default_data())]
    _done(benchmark(_config("", config, schema), data, _seeds(seeds), quick, out, progress=typer.echo,
                    only=cell, methods=methods))


@experiment_app.command("privacy")
@bad_input_exits_2
def privacy_command(
    data: Annotated[list[str] | None, typer.Option(help="Data folder (repeat for several); default: the simulated network.")] = None,
    out: Annotated[Path, typer.Option(help="Result folder; a rerun resumes from its results.csv.")] = Path("runs/privacy"),
    seeds: Seeds = "3", quick: Quick = False, config: Config = None,
    epsilons: Annotated[str | None, typer.Option(help="Record-level ε per node for the whole run, comma-separated; "
                                                      "inf: in the clear (default: 0.5,1,2,4,8,inf).")] = None,
    cell: Annotated[list[str] | None, typer.Option(help="Only this benchmark cell (repeat for several); default: "
                                                    "natural, home clusters, Dirichlet α=0.5 and α=0.1.")] = None,
    level: Annotated[str, typer.Option(help="record: DP-SGD, per benchmark cell | node: DP-FedAvg on the rows dealt "
                                            "to N nodes (node-level.csv, .md, .png).")] = "record",
    nodes: Annotated[str | None, typer.Option(help="--level node: node counts N, comma-separated "
                                                   "(default 10,50,100,200,300).")] = None,
) -> None:
    """AUROC and FPR@TPR0.99 against ε: record level (DP-SGD with Opacus' accountant) through the federation's
    encoder alone and as the personalised detector, on natural and device-like deals; or node level (DP-FedAvg)
    against the number of nodes (CSV, PNG, Markdown)."""
    from fedcl.errors import ConfigError
    from fedcl.experiments import check_epsilons, check_node_counts, node_privacy, privacy

    if level not in ("record", "node"):
        raise ConfigError(f"--level must be record or node, got {level!r}")
    if nodes is not None and level != "node":
        raise ConfigError("--nodes goes with --level node")
    if cell and level == "node":
        raise ConfigError("--cell goes with --level record; --level node deals the rows to N nodes (--nodes)")
    values = None if epsilons is None else _numbers(epsilons, "epsilons", float)
    if values is not None:
        check_epsilons(values)  # bad options fail before the default data are made
    counts = None if nodes is None else check_node_counts(_numbers(nodes, "nodes", int))
    if not data:
        from fedcl.default_data import ensure_default_data

        data = [str(ensure_default_data())]
    if level == "node":
        _done(node_privacy(_config("", config), data, _seeds(seeds), quick, out, epsilons=values, node_counts=counts,
                           progress=typer.echo))
        return
    _done(privacy(_config("", config), data, _seeds(seeds), quick, out, epsilons=values, only=cell,
                  progress=typer.echo))


@experiment_app.command("audit")
@bad_input_exits_2
def audit_command(
    data: Annotated[list[str] | None, typer.Option(help="Data folder (repeat for several); default: the simulated network.")] = None,
    out: Annotated[Path, typer.Option(help="Result folder; a rerun resumes from its results.csv.")] = Path("runs/audit"),
    seeds: Seeds = "3", quick: Quick = False, config: Config = None,
    epsilons: Annotated[str | None, typer.Option(help="Record-level ε per node for the whole run, comma-separated; "
                                                      "inf: in the clear (default: 1,8,inf).")] = None,
    cell: Annotated[list[str] | None, typer.Option(help="Only this benchmark cell (repeat for several); default: "
                                                    "natural.")] = None,
) -> None:
    """Membership inference against what a node releases (the federation's encoder, its updates, μ_i): attack
    AUROC, advantage and TPR at FPR 0.01 against ε, with the ε-DP bound (CSV, PNG, Markdown)."""
    from fedcl.experiments import audit, check_epsilons

    values = None if epsilons is None else _numbers(epsilons, "epsilons", float)
    if values is not None:
        check_epsilons(values)  # bad options fail before the default data are made
    if not data:
        from fedcl.default_data import ensure_default_data

        data = [str(ensure_default_data())]
    _done(audit(_config("", config), data, _seeds(seeds), quick, out, epsilons=values, only=cell,
                progress=typer.echo))
