"""`fedcl flower ...`: the same federation on Flower, in-process or deployed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedcl.cli.errors import bad_input_exits_2, command_group
from fedcl.cli.training import (CompressionBits, DpDelta, DpEpsilon, DpLevel, DpSampleRate, DpUpdateClip,
                                SecureAggregation, note_few_rows, round_info)
from fedcl.config import AGGREGATIONS, FedCLConfig, load_config
from fedcl.errors import ConfigError, InputError

if TYPE_CHECKING:
    from fedcl.federated.flower.certificates import Certificates

flower_app = command_group("Run fedcl on Flower: in one process, or as a SuperLink with SuperNodes.")


@flower_app.command("simulate")
@bad_input_exits_2
def simulate_command(
    data: Annotated[str, typer.Option(help="Data folder; every node in it becomes a Flower node.")],
    out: Annotated[Path, typer.Option(help="Run directory (checkpoint, history, model).")] = Path("runs/flower"),
    config: Annotated[Path | None, typer.Option(help="TOML file with FedCLConfig keys.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    aggregation: Annotated[str | None, typer.Option(help=" | ".join(AGGREGATIONS) + " (default dynamic-guarded).")] = None,
    secure_aggregation: SecureAggregation = None,
    dp_epsilon: DpEpsilon = None,
    dp_delta: DpDelta = None,
    dp_level: DpLevel = None,
    dp_sample_rate: DpSampleRate = None,
    dp_update_clip: DpUpdateClip = None,
    compression_bits: CompressionBits = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run directory's last checkpoint.")] = False,
) -> None:
    """Run the Flower ServerApp and ClientApps in this process (no servers), then evaluate."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fedcl import pipeline
    from fedcl.federated.flower import InProcessGrid, run_server
    from fedcl.federated.flower.client_app import app as client_app

    data = str(Path(data).resolve())  # the run directory stays valid from anywhere
    cfg = (load_config(config) if config else FedCLConfig()).updated(data=data, rounds=rounds, seed=seed,
                                                                        aggregation=aggregation,
                                                                        secure_aggregation=secure_aggregation,
                                                                        dp_epsilon=dp_epsilon, dp_delta=dp_delta,
                                                                        dp_level=dp_level, dp_sample_rate=dp_sample_rate,
                                                                        dp_update_clip=dp_update_clip,
                                                                        compression_bits=compression_bits)
    names = [s.name for s in pipeline.load_splits(cfg)]
    logging.getLogger("flwr").setLevel(logging.WARNING)
    # Partition ids 1..N, as the deployment guide numbers nodes (the order, which is what counts, is the same).
    nodes = [{"data-path": data, "node-name": name, "partition-id": i} for i, name in enumerate(names, start=1)]
    progress = Progress(TextColumn("[bold]federated rounds"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), console=Console(stderr=True))
    rounds = []

    def on_round(record: dict) -> None:
        if not rounds:  # shown from the first round saved: settings the server refuses end without a bar
            progress.start()
            rounds.append(progress.add_task("rounds", total=cfg.rounds, completed=record["round"] - 1, info=""))
        progress.update(rounds[0], completed=record["round"], info=round_info(record))

    try:
        run_server(InProcessGrid(client_app, nodes), cfg, out, min_nodes=len(nodes), resume=resume, on_round=on_round)
    finally:
        progress.stop()
    summary = pipeline.evaluate(out, data=data)
    note_few_rows(summary)
    fleet = f"; the nodes' own evaluation: {out / 'fleet.md'}" if (out / "fleet.md").is_file() else ""
    typer.echo(f"pooled AUROC {summary['pooled']['auroc']:.4f}; report: {out / 'report.md'}{fleet}")


@flower_app.command("certs")
@bad_input_exits_2
def certs_command(
    out: Annotated[Path, typer.Argument(help="Folder for ca.crt, server.pem, server.key (and nodes/ keys).")],
    host: Annotated[list[str] | None, typer.Option(help="Name or address the SuperLink is reached at "
                                                        "(repeat).")] = None,
    days: Annotated[int, typer.Option(help="Validity of the certificates.")] = 365,
    nodes: Annotated[int, typer.Option(help="Also make this many SuperNode authentication key pairs.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing PKI and node keys (nodes holding them are "
                                             "locked out).")] = False,
) -> None:
    """Make a CA and a SuperLink TLS certificate (and SuperNode keys); keep ca.crt for every node."""
    from fedcl.federated.flower.certificates import (LOOPBACK_HOSTS, check_new_pki, generate_certificates,
                                                     generate_node_keys)

    if days < 1 or nodes < 0:
        raise ConfigError(f"--days {days} --nodes {nodes}: give at least one day and a node count ≥ 0")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, not a folder")
    if not force:
        check_new_pki(out, nodes)  # all refused before anything is written
    hosts = tuple(dict.fromkeys([*(host or []), *LOOPBACK_HOSTS]))  # the SuperLink's own executor uses loopback
    certs = generate_certificates(out, hosts, days=days, overwrite=force)
    typer.echo(f"CA {certs.ca_cert}; SuperLink certificate {certs.server_cert} for {', '.join(hosts)}")
    for key, pub in generate_node_keys(out / "nodes", nodes, overwrite=force) if nodes else []:
        typer.echo(f"node key {key} (enrol {pub} with `fedcl flower enrol`)")


@flower_app.command("enrol")
@bad_input_exits_2
def enrol_command(
    registry: Annotated[Path, typer.Option(help="The node registry on the coordinator (JSON lines; created).")],
    name: Annotated[str, typer.Option(help="The node's name: its data folder's name, or the --node-name it runs "
                                           "with.")],
    partition_id: Annotated[int, typer.Option(help="The node's --partition-id: a distinct integer per node.")],
    key: Annotated[Path, typer.Option(help="The node's public key (node-<i>.pub, or ssh-keygen's .pub).")],
    superlink: Annotated[str | None, typer.Option(help="HOST:PORT of a running SuperLink to register the key with "
                                                       "now (else `fedcl flower superlink --registry` does).")] = None,
    root_certificates: Annotated[Path | None, typer.Option(help="The CA certificate (ca.crt), with --superlink.")]
    = None,
) -> None:
    """Enrol a node: bind its public key to its name and partition id in the registry (each must be new)."""
    from fedcl.federated.flower.registry import (check_enrolable, enrol, key_fingerprint, register_enrolled,
                                                 registry_path)

    registry = registry_path(registry)
    check_enrolable(registry, name, partition_id, key)  # all refusals before anything is written or registered
    if superlink is not None and root_certificates is None:
        raise ConfigError("give --root-certificates ca.crt with --superlink (node authentication needs TLS)")
    if superlink is not None:
        from fedcl.federated.flower.health import probe_superlink

        _existing_file(root_certificates, "CA certificate")
        probe_superlink(superlink, root_certificates)
    entry = enrol(registry, name, partition_id, key)
    typer.echo(f"enrolled {entry.name} (partition {entry.partition}, key {key_fingerprint(entry.key)}) in {registry}")
    if superlink is not None:
        import tempfile

        from fedcl.federated.flower.flwr_cli import flwr_home_env

        enrolled = f"{name} is enrolled in {registry} (do not enrol it again)"
        with _until_signalled(), tempfile.TemporaryDirectory() as home:
            try:
                found = register_enrolled(registry, flwr_home_env(home, superlink, root_certificates), names=[name])
            except InputError as err:  # the line is written: say so, or a retry is refused as "already enrolled"
                raise ConfigError(f"{enrolled}, but registering its key with the SuperLink at {superlink} failed "
                                  f"({err}); it will be registered when `fedcl flower superlink --registry "
                                  f"{registry}` next starts") from None
        if name in found.problems:
            raise ConfigError(f"{enrolled}, but the SuperLink at {superlink} already held its key: "
                              f"{found.problems[name]}")
        typer.echo(f"registered with the SuperLink at {superlink}; the node takes part from the next run")


@flower_app.command("nodes")
@bad_input_exits_2
def nodes_command(
    registry: Annotated[Path | None, typer.Option(help="The node registry (`fedcl flower enrol`).")] = None,
    out: Annotated[Path | None, typer.Option(help="A run directory: last round and exclusions from its "
                                                  "history.jsonl.")] = None,
    superlink: Annotated[str | None, typer.Option(help="HOST:PORT of the SuperLink, for each node's status.")] = None,
    root_certificates: Annotated[Path | None, typer.Option(help="The CA certificate (ca.crt), with --superlink.")]
    = None,
    insecure: Annotated[bool, typer.Option(help="No TLS (loopback experiments only).")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the fleet: each node's name, partition id, status, last round and the rounds it was set aside in."""
    import json

    from fedcl.federated.flower.fleet import FLEET_FILE
    from fedcl.federated.flower.registry import fleet_view, format_fleet, read_registry, registry_path
    from fedcl.rundir import HISTORY_FILE, read_history

    if registry is None and out is None:
        raise ConfigError("give --registry FILE, --out RUN_DIR or both")
    registry = registry_path(registry) if registry is not None else None
    if registry is not None and not registry.is_file():
        raise ConfigError(f"{registry}: no node registry there")
    if out is not None and not (out / HISTORY_FILE).is_file():
        raise ConfigError(f"{out}: no {HISTORY_FILE} (not a Flower run directory, or no round finished yet)")
    enrolments = read_registry(registry) if registry is not None else None
    history = read_history(out) if out is not None else []
    live = None
    if superlink is not None:
        import tempfile

        from fedcl.federated.flower.flwr_cli import flwr_home_env, list_nodes
        from fedcl.federated.flower.health import probe_superlink

        if not insecure and root_certificates is None:
            raise ConfigError("give --root-certificates ca.crt or --insecure with --superlink")
        _existing_file(root_certificates, "CA certificate")
        probe_superlink(superlink, root_certificates, insecure=insecure)
        with _until_signalled(), tempfile.TemporaryDirectory() as home:
            live = list_nodes(flwr_home_env(home, superlink, root_certificates, insecure=insecure))
    evaluation = None
    if out is not None and (out / FLEET_FILE).is_file():  # the nodes' own evaluation at the end of the run
        try:
            evaluation = json.loads((out / FLEET_FILE).read_text())
        except ValueError as garbled:
            raise InputError(f"{out / FLEET_FILE}: not JSON ({garbled})") from None
    rows = fleet_view(enrolments, history, live, evaluation)
    if json_output:
        typer.echo(json.dumps({"rounds": max((int(h["round"]) for h in history), default=None), "nodes": rows}))
        return
    if out is not None:
        typer.echo(f"{out}: {len(history)} round(s) in {HISTORY_FILE}")
    typer.echo(format_fleet(rows))


@contextmanager
def _until_signalled() -> Iterator[None]:
    """SIGTERM/SIGINT/SIGHUP stop the command's child processes, then exit 128 + the signal number."""
    from fedcl.federated.flower.service import Stopped, stop_on_signals

    try:
        with stop_on_signals():
            yield
    except Stopped as stop:
        typer.echo(f"stopped by {stop}", err=True)
        raise typer.Exit(128 + stop.signum) from None


def _tls_files(certs: Path) -> Certificates:
    from fedcl.federated.flower.certificates import Certificates

    tls = Certificates.in_dir(certs)
    missing = [p.name for p in (tls.ca_cert, tls.server_cert, tls.server_key) if not p.is_file()]
    if missing:
        raise ConfigError(f"{certs}: no {', '.join(missing)} (make them with `fedcl flower certs {certs}`)")
    return tls


def _existing_file(path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    return path


@flower_app.command("superlink")
@bad_input_exits_2
def superlink_command(
    certs: Annotated[Path | None, typer.Option(help="Folder written by `fedcl flower certs`.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="The one port of Fleet, Control and runtime APIs.")] = 9092,
    database: Annotated[Path | None, typer.Option(help="SuperLink state file (registered nodes, runs); its "
                                                       "folder is created.")] = None,
    registry: Annotated[Path | None, typer.Option(help="Node registry (`fedcl flower enrol`): its keys are "
                                                       "registered and take part under their enrolled names; other "
                                                       "keys already in a reused --database are warned about in the "
                                                       "log and get no work. Turns on node authentication.")]
    = None,
    register: Annotated[list[Path] | None, typer.Option(help="A SuperNode public key to accept (repeat), without a "
                                                             "registry; turns on node authentication.")] = None,
    insecure: Annotated[bool, typer.Option(help="No TLS (loopback experiments only).")] = False,
    log_file: Annotated[Path | None, typer.Option(help="Append the SuperLink's log here (timestamped, no colour "
                                                       "codes) instead of stdout.")] = None,
    start_timeout: Annotated[float, typer.Option(help="Seconds the SuperLink may take to come up.")] = 120.0,
) -> None:
    """Run a SuperLink in the foreground; SIGTERM or Ctrl-C stops it and every process it started."""
    import tempfile

    from fedcl.federated.flower import commands
    from fedcl.federated.flower.environment import base_env
    from fedcl.federated.flower.flwr_cli import flwr_home_env, register_supernodes
    from fedcl.federated.flower.health import wait_healthy
    from fedcl.federated.flower.service import Service

    if not insecure and certs is None:
        raise ConfigError("give --certs DIR (from `fedcl flower certs`) or --insecure")
    tls = _tls_files(certs) if certs else None
    for key in register or []:
        _existing_file(key, "SuperNode public key")
    link_env = base_env()
    if registry is not None:
        from fedcl.federated.flower.registry import REGISTRY_ENV, read_registry, registry_path

        if register:
            raise ConfigError("give --registry or --register, not both (enrol every node: `fedcl flower enrol`)")
        registry = registry_path(registry)
        if not registry.is_file():
            raise ConfigError(f"{registry}: no node registry there (enrol nodes with `fedcl flower enrol --registry "
                              f"{registry} ...`)")
        enrolled = read_registry(registry)  # a malformed registry stops here, before anything starts
        link_env[REGISTRY_ENV] = str(registry)  # the ServerApps the SuperLink starts read it at each run
    if database is not None:
        database = database.expanduser().resolve()
        database.parent.mkdir(parents=True, exist_ok=True)  # flower-superlink does not create it
    argv = commands.superlink_command(certs=tls, insecure=insecure, host=host, port=port, database=database,
                                      supernode_auth=bool(register) or registry is not None)
    local = f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    with _until_signalled(), Service("flower-superlink", argv, link_env, log_file) as link:
        try:
            waited = wait_healthy(local, tls.ca_cert if tls else None, insecure=insecure, process=link.process,
                                  timeout=start_timeout)
        except (InputError, TimeoutError) as err:
            raise (link.failure() if link.exited() else ConfigError(str(err))) from None
        link.note(f"SuperLink healthy after {waited:.1f} s")
        if register:
            with tempfile.TemporaryDirectory() as home:
                env = flwr_home_env(home, local, tls.ca_cert if tls else None, insecure=insecure)
                register_supernodes(register, env, exist_ok=True)
            link.note(f"{len(register)} SuperNode key(s) registered")
        if registry is not None:
            from fedcl.federated.flower.registry import register_enrolled

            with tempfile.TemporaryDirectory() as home:
                found = register_enrolled(registry, flwr_home_env(home, local, tls.ca_cert))
            link.note(f"{len(enrolled)} enrolled node(s) of {registry} registered")
            for line in found.notes():  # enrolled nodes that get no work; keys outside the registry
                link.note(line)
        typer.echo(f"SuperLink on {host}:{port} ({'TLS' if tls else 'insecure'}); log "
                   f"{log_file if log_file else 'on stdout'}", err=True)
        if link.wait() != 0:
            raise link.failure()


def _served_node(data: Path, node_name: str | None) -> str:
    """The name of the node a SuperNode serves from ``data``, or a one-line refusal now rather than at its
    first round: a folder of several nodes needs ``--node-name``, which must be one of them."""
    from fedcl.data import AmbiguousLayout, node_names

    if not data.exists():
        raise ConfigError(f"{data}: data folder not found")
    try:
        names = node_names(data)
    except AmbiguousLayout:  # the run's layout key says how to read it, at the first round
        return node_name or data.resolve().name
    if node_name is not None and node_name not in names:
        raise ConfigError(f"{data}: no node named {node_name!r} (found {', '.join(names)}) (--node-name)")
    if node_name is None and len(names) > 1:
        raise ConfigError(f"{data} holds {len(names)} nodes ({', '.join(names)}); give --node-name")
    return node_name or names[0]


@flower_app.command("supernode")
@bad_input_exits_2
def supernode_command(
    data: Annotated[Path, typer.Option(help="This node's data folder (its own rows only).")],
    superlink: Annotated[str, typer.Option(help="HOST:PORT of the SuperLink.")],
    partition_id: Annotated[int, typer.Option(help="This node's index in the federation: a distinct integer per "
                                                   "node.")],
    root_certificates: Annotated[Path | None, typer.Option(help="The CA certificate (ca.crt).")] = None,
    auth_key: Annotated[Path | None, typer.Option(help="This node's private key, when the SuperLink authenticates "
                                                       "nodes.")] = None,
    node_name: Annotated[str | None, typer.Option(help="Which node of the data folder, if it holds several.")] = None,
    port: Annotated[int, typer.Option(help="Local port of this SuperNode's ClientApp API.")] = 9094,
    insecure: Annotated[bool, typer.Option(help="No TLS (loopback experiments only).")] = False,
    log_file: Annotated[Path | None, typer.Option(help="Append the SuperNode's log here (timestamped, no colour "
                                                       "codes) instead of stdout.")] = None,
    warm: Annotated[bool, typer.Option(help="Keep a worker process with torch, fedcl and the node's rows loaded, "
                                            "which does each message's work (--no-warm: each ClientApp process "
                                            "does it, ~0.5 GB less while idle, seconds more per round).")] = True,
    max_epsilon: Annotated[float | None, typer.Option(help="This node's own privacy budget: it trains only under "
                                                           "record-level DP, reserving each run's ε, until the "
                                                           "runs add up to this (with --privacy-ledger).")] = None,
    privacy_ledger: Annotated[Path | None, typer.Option(help="File recording what this node has spent (JSON lines; "
                                                             "keep it with the node).")] = None,
    max_delta: Annotated[float | None, typer.Option(help="With --max-epsilon: the δ all runs together may "
                                                         "spend (default 1e-4: ten runs at δ = 1e-5).")] = None,
) -> None:
    """Run a SuperNode serving one node's data in the foreground; SIGTERM or Ctrl-C stops it and its ClientApps."""
    import contextlib
    import tempfile

    from fedcl.federated.flower import commands
    from fedcl.federated.flower.environment import base_env
    from fedcl.federated.flower.health import check_address
    from fedcl.federated.flower.service import Service

    node_name = node_name or None  # as the ClientApp reads an empty name
    name = _served_node(data, node_name)
    if not insecure and root_certificates is None:
        raise ConfigError("give --root-certificates ca.crt or --insecure")
    check_address(superlink)
    _existing_file(root_certificates, "CA certificate")
    _existing_file(auth_key, "SuperNode private key")
    commands.node_config(data, partition_id, max_epsilon=max_epsilon, privacy_ledger=privacy_ledger,
                         max_delta=max_delta)  # refusals first
    if max_epsilon is not None:  # a ledger the node cannot keep fails now, not at its first round
        from fedcl.privacy.budget import PrivacyLedger

        spent = PrivacyLedger(privacy_ledger, max_epsilon).spent()
        typer.echo(f"privacy budget: ε {spent:g} of {max_epsilon:g} reserved so far (ledger {privacy_ledger})", err=True)
    with _until_signalled(), contextlib.ExitStack() as services:
        socket = None
        if warm:  # a folder only this user can enter (mkdtemp: 0700), removed on the way out
            socket = Path(services.enter_context(tempfile.TemporaryDirectory(prefix="fedcl-worker-"))) / "worker"
            services.enter_context(Service("fedcl worker", commands.worker_command(socket), base_env(), log_file))
        argv = commands.supernode_command(superlink=superlink, data_path=data.resolve(), partition_id=partition_id,
                                          node_name=node_name, root_certificates=root_certificates,
                                          insecure=insecure, private_key=auth_key, port=port, worker_socket=socket,
                                          max_epsilon=max_epsilon, privacy_ledger=privacy_ledger, max_delta=max_delta)
        node = services.enter_context(Service("flower-supernode", argv, base_env(), log_file))
        typer.echo(f"SuperNode {name} (partition {partition_id}, data {data}) -> {superlink}; "
                   f"log {log_file if log_file else 'on stdout'}", err=True)
        if node.wait() != 0:  # a node that cannot join (TLS, key) exits within seconds
            raise node.failure()


@flower_app.command("run")
@bad_input_exits_2
def submit_command(
    superlink: Annotated[str, typer.Option(help="HOST:PORT of the SuperLink.")],
    out: Annotated[str, typer.Option(help="Run directory ON THE SUPERLINK MACHINE (absolute path).")],
    root_certificates: Annotated[Path | None, typer.Option(help="The CA certificate (ca.crt).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with FedCLConfig keys.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    aggregation: Annotated[str | None, typer.Option(help=" | ".join(AGGREGATIONS) + " (default dynamic-guarded).")] = None,
    secure_aggregation: SecureAggregation = None,
    dp_epsilon: DpEpsilon = None,
    dp_delta: DpDelta = None,
    dp_level: DpLevel = None,
    dp_sample_rate: DpSampleRate = None,
    dp_update_clip: DpUpdateClip = None,
    compression_bits: CompressionBits = None,
    min_nodes: Annotated[float, typer.Option(help="Fewest nodes a round needs (a run survives nodes dropping out); "
                                                  "below 1, a share of the fleet.")] = 2,
    sample_fraction: Annotated[float, typer.Option(help="Share of the nodes asked to train each round (seeded).")] = 1.0,
    round_timeout: Annotated[float, typer.Option(help="Seconds the first round waits for replies, and any round at "
                                                      "most.")] = 600.0,
    timeout_multiple: Annotated[float, typer.Option(help="Later rounds wait this multiple of the slowest round "
                                                         "so far ...")] = 3.0,
    timeout_floor: Annotated[float, typer.Option(help="... and at least this many seconds.")] = 60.0,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint in --out (same settings).")] = False,
    evaluate: Annotated[bool, typer.Option(help="After the last round, each node evaluates the model on its held-out "
                                                "rows; --out gets fleet.json and fleet.md.")] = True,
    wait: Annotated[bool, typer.Option(help="Wait for the run; exit 1 unless it completes (2: settings refused).")]
    = False,
    insecure: Annotated[bool, typer.Option(help="No TLS (loopback experiments only).")] = False,
) -> None:
    """Submit a fedcl run to a SuperLink and print its run id."""
    import tempfile

    from fedcl.federated.flower.flwr_cli import flwr_home_env, submit_run
    from fedcl.federated.flower.health import on_this_machine, probe_superlink

    if not insecure and root_certificates is None:
        raise ConfigError("give --root-certificates ca.crt or --insecure")
    if not Path(out).is_absolute():
        raise ConfigError(f"--out {out}: give an absolute path (it is a folder on the SuperLink machine)")
    cfg = (load_config(config) if config else FedCLConfig()).updated(rounds=rounds, seed=seed, aggregation=aggregation,
                                                                        secure_aggregation=secure_aggregation,
                                                                        dp_epsilon=dp_epsilon, dp_delta=dp_delta,
                                                                        dp_level=dp_level, dp_sample_rate=dp_sample_rate,
                                                                        dp_update_clip=dp_update_clip,
                                                                        compression_bits=compression_bits)
    if on_this_machine(superlink):  # else only the ServerApp can check --out, and it fails the run
        from fedcl.federated.flower.run_dir import check_run_dir

        check_run_dir(out, cfg, resume)
    probe_superlink(superlink, root_certificates, insecure=insecure)  # flwr reports every failure alike
    settings = {k: v for k, v in cfg.to_dict().items() if k != "data"}
    settings.update({"out-dir": out, "min-nodes": min_nodes, "sample-fraction": sample_fraction,
                     "round-timeout": round_timeout, "timeout-multiple": timeout_multiple,
                     "timeout-floor": timeout_floor, "resume": resume, "evaluate": evaluate})
    # A private FLWR_HOME: flwr's config.toml there is rewritten for this connection.
    with _until_signalled(), tempfile.TemporaryDirectory() as home:
        env = flwr_home_env(home, superlink, root_certificates, insecure=insecure)
        run_id = submit_run(env, settings)
        typer.echo(f"run {run_id} submitted")
        if wait:
            _wait_for_run(run_id, env)
            if evaluate and on_this_machine(superlink):
                _echo_fleet(Path(out))


def _echo_fleet(out: Path) -> None:
    """The federated evaluation's headline, when the run folder is on this machine."""
    import json

    from fedcl.federated.flower.fleet import FLEET_FILE

    try:
        fleet = json.loads((out / FLEET_FILE).read_text())
    except (OSError, ValueError) as unreadable:  # another user's folder, or a run under differential privacy
        typer.echo(f"no fleet evaluation to show here ({out / FLEET_FILE}: {unreadable.__class__.__name__}); "
                   "the ServerApp log says why (flwr log RUN_ID fedcl)")
        return
    pooled = fleet["pooled"]
    auroc = "–" if pooled is None or pooled["auroc"] is None else f"{pooled['auroc']:.4f}"
    typer.echo(f"{len(fleet['nodes'])} nodes evaluated, {len(fleet['not_evaluated'])} not; pooled AUROC {auroc}; "
               f"report: {out / 'fleet.md'}")


def _wait_for_run(run_id: int, env: dict) -> None:
    """Wait for the run to end; exit 1 unless it completed (2 when the ServerApp refused its settings)."""
    import math

    from fedcl.federated.flower.flwr_cli import run_info, wait_finished
    from fedcl.federated.flower.run_dir import REFUSED

    status = wait_finished(run_id, env, timeout=math.inf)
    if status == "finished:completed":
        typer.echo(f"run {run_id}: {status}")
        return
    details = " ".join(str(run_info(run_id, env).get("status-details", "")).split())
    typer.echo(f"run {run_id}: {status}" + (f" ({details})" if details else " (the SuperLink's log says why)"),
               err=True)
    raise typer.Exit(2 if REFUSED in details else 1)
