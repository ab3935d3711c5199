"""The node registry: which SuperNode key is which node (name and partition id), kept by the coordinator.

Enrolment binds one node's authentication key to its name and partition id, once, on the
coordinator. The registry is then the source of truth for who is in the federation:

- ``fedcl flower superlink --registry FILE`` registers the enrolled keys with the SuperLink
  (``--enable-supernode-auth``) and records the node id the SuperLink gives each key. Keys that a
  reused ``--database`` already holds outside the registry can still connect: they are reported
  (:attr:`Registration.outsiders`) and get no work;
- the ServerApp (:func:`enrolled_grid`) sends work only to enrolled node ids and refuses a reply
  whose name or partition id is not the one enrolled for its key, so the names in the server log
  and ``history.jsonl`` are the enrolled names;
- ``fedcl flower nodes`` (:func:`fleet_view`) lists the enrolled nodes with their status and their
  last round.

The file is JSON lines, one enrolled node per line, rewritten atomically under a lock::

    {"name": "gateway-1", "partition": 1, "key": "ecdsa-sha2-nistp384 AAAA...", "node_id": 5821..., "enrolled_at": "2026-11-30T16:40:01+00:00"}

``key`` is the node's OpenSSH public key without its comment; ``node_id`` is null until the
SuperLink has registered the key. Names, partition ids, keys and node ids (when not null) are each
unique. The file holds public keys only (not secret). See ``docs/flower-deployment.md``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

from fedcl.errors import ConfigError

if TYPE_CHECKING:  # `fedcl flower enrol` and `nodes` load neither flwr nor torch
    from flwr.app import Message, RecordDict
    from flwr.serverapp import Grid

__all__ = ["REGISTRY_ENV", "EnrolledGrid", "Enrolment", "Registration", "check_enrolable", "enrol", "enrolled_grid",
           "fleet_view", "format_fleet", "key_fingerprint", "read_public_key", "read_registry", "record_node_ids",
           "register_enrolled", "registry_path"]

#: Environment variable through which ``fedcl flower superlink --registry`` tells the ServerApps
#: it starts (flower-superlink -> flower-superexec -> ServerApp inherit the environment) where the registry is.
REGISTRY_ENV = "FEDCL_NODE_REGISTRY"
#: The curves flwr 1.42 accepts for SuperNode keys (NIST).
_CURVES = ("secp256r1", "secp384r1", "secp521r1")

_log = logging.getLogger("flwr")  # the ServerApp's log: Flower's own handler prints it


@dataclass(frozen=True)
class Enrolment:
    """One enrolled node.

    Attributes
    ----------
    name : str
        The node's name: that of its data (folder name or ``node-name``); keys its random stream and
        labels it in the history.
    partition : int
        Its partition id (``--partition-id``), distinct per node.
    key : str
        Its OpenSSH public key, ``"<type> <base64>"`` without comment.
    node_id : int or None
        The id the SuperLink gave the key when registering it; None until then.
    enrolled_at : str
        ISO 8601 time of enrolment (UTC).
    """

    name: str
    partition: int
    key: str
    node_id: int | None = None
    enrolled_at: str = ""


def registry_path(path: str | Path) -> Path:
    """The registry file every entry point uses: ``~`` expanded, made absolute (symlinks resolved)."""
    return Path(path).expanduser().resolve()


def key_fingerprint(key: str) -> str:
    """``SHA256:...`` fingerprint of an OpenSSH public key, as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(key.split()[1], validate=True)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _flower_key(text: str) -> str:
    """``"<type> <base64>"`` of an OpenSSH public key (comment dropped); ValueError saying why Flower cannot use it."""
    parts = text.split()
    try:
        if len(parts) < 2:
            raise ValueError
        base64.b64decode(parts[1], validate=True)  # cryptography's own decoding skips stray characters
        key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not an OpenSSH public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        raise ValueError("Flower accepts only ECDSA keys on a NIST curve (make one with `ssh-keygen -t ecdsa -b 384`)")
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def read_public_key(path: str | Path) -> str:
    """A SuperNode public key file (``node-<i>.pub``, ``ssh-keygen`` ``.pub``) as ``"<type> <base64>"``.

    Raises ConfigError unless it is an OpenSSH ECDSA public key on a NIST curve (what flwr accepts).
    """
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: public key not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the public key ({err.strerror})") from None
    try:
        return _flower_key(data.decode("utf-8"))
    except ValueError as err:  # UnicodeDecodeError too: a binary file
        hint = " (that is a private key: give the .pub file)" if b"PRIVATE KEY" in data else ""
        reason = str(err) if not isinstance(err, UnicodeDecodeError) else "not an OpenSSH public key"
        raise ConfigError(f"{path}: {reason}{hint}") from None


def _check_name(name: str) -> None:
    # The name travels in --node-config as a single-quoted TOML literal, and prints in one-line logs.
    if not name or name != name.strip() or len(name) > 100 or "'" in name or not name.isprintable():
        raise ConfigError(f"node name {name!r}: give 1-100 printable characters, no single quote, no leading or "
                          "trailing space")


def _parse_line(path: Path, number: int, line: str) -> Enrolment:
    try:
        fields = json.loads(line)
        node_id = fields.get("node_id")
        entry = Enrolment(name=str(fields["name"]), partition=int(fields["partition"]), key=str(fields["key"]),
                          node_id=None if node_id is None else int(node_id),
                          enrolled_at=str(fields.get("enrolled_at", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"{path}:{number}: not a registry line (JSON with name, partition, key)") from None
    try:
        return replace(entry, key=_flower_key(entry.key))  # the check `enrol` makes: a hand-edited key fails here
    except ValueError as err:
        raise ConfigError(f"{path}:{number}: the key of {entry.name}: {err}") from None


def read_registry(path: str | Path) -> list[Enrolment]:
    """The enrolled nodes of a registry file, in enrolment order; [] when the file does not exist.

    Raises ConfigError naming the line that is not a registry entry, or a name, partition or key
    enrolled twice (a registry edited by hand).
    """
    path = registry_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a node registry (not UTF-8 text)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the node registry ({err.strerror})") from None
    entries = [_parse_line(path, i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    _check_unique(path, entries)
    return entries


def _check_unique(path: Path, entries: Sequence[Enrolment]) -> None:
    """ConfigError when two entries share a name, partition id, key or node id."""
    for i, entry in enumerate(entries):
        _check_new(path, entries[:i], entry)


def _check_new(path: Path, entries: Sequence[Enrolment], new: Enrolment) -> None:
    for old in entries:
        for what, same in ((f"name {new.name}", old.name == new.name),
                           (f"partition id {new.partition}", old.partition == new.partition),
                           (f"key {key_fingerprint(new.key)}", old.key == new.key),
                           (f"node id {new.node_id}", new.node_id is not None and old.node_id == new.node_id)):
            if same:
                raise ConfigError(f"{path}: {what} is already enrolled, as {old.name} (partition {old.partition}): "
                                  "every node needs a name, partition id and key of its own")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<registry>.lock`` (the enrol command and the SuperLink wrapper both write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, entries: Iterable[Enrolment]) -> None:
    # Write then rename: a reader (the ServerApp) never sees half a file.
    text = "".join(json.dumps(asdict(e)) + "\n" for e in entries)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def enrol(path: str | Path, name: str, partition: int, public_key: str | Path,
          node_id: int | None = None) -> Enrolment:
    """Add a node to the registry (created if missing).

    Parameters
    ----------
    path : str or Path
        The registry file.
    name : str
        The node's name: that of its data (the data folder's name, or the ``--node-name`` it runs
        with); a node that reports another name is refused.
    partition : int
        The node's partition id (``--partition-id``), >= 0.
    public_key : str or Path
        The node's OpenSSH ECDSA public key file.
    node_id : int, optional
        The SuperLink's id of the key, when it was registered already.

    Returns
    -------
    Enrolment

    Raises
    ------
    ConfigError
        A bad name, partition or key file, or a name, partition id or key already enrolled.
    """
    path = registry_path(path)
    _check_name(name)
    if int(partition) < 0:
        raise ConfigError(f"partition id {partition}: give an integer >= 0")
    new = Enrolment(name=name, partition=int(partition), key=read_public_key(public_key), node_id=node_id,
                    enrolled_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    with _locked(path):
        entries = read_registry(path)
        _check_new(path, entries, new)
        try:
            _write(path, [*entries, new])
        except OSError as err:
            raise ConfigError(f"cannot write the node registry {path} ({err.strerror})") from None
    return new


def check_enrolable(path: str | Path, name: str, partition: int, public_key: str | Path) -> None:
    """ConfigError if :func:`enrol` would refuse these, without writing anything."""
    path = registry_path(path)
    _check_name(name)
    if int(partition) < 0:
        raise ConfigError(f"partition id {partition}: give an integer >= 0")
    _check_new(path, read_registry(path), Enrolment(name, int(partition), read_public_key(public_key)))


def record_node_ids(path: str | Path, node_ids: Mapping[str, int]) -> list[Enrolment]:
    """Store the SuperLink's node id of each named node; returns the registry as written.

    Raises ConfigError, writing nothing, when a node id would then be held twice.
    """
    path = registry_path(path)
    with _locked(path):
        entries = [replace(e, node_id=int(node_ids[e.name])) if e.name in node_ids else e
                   for e in read_registry(path)]
        _check_unique(path, entries)
        _write(path, entries)
    return entries


@dataclass(frozen=True)
class Registration:
    """What :func:`register_enrolled` found on the SuperLink.

    Attributes
    ----------
    problems : dict of str to str
        Enrolled nodes that get no work, by name: why, and what to do.
    outsiders : tuple of int
        Node ids the SuperLink holds (not unregistered) for keys the registry does not have: added
        with ``--register`` or ``flwr supernode register``, or a retired node whose line was deleted,
        in a reused ``--database``. They can still connect, but get no work.
    unchecked : str
        Why the SuperLink's nodes could not be listed ("" when they were): then neither the node
        ids kept for keys it already held nor the outsiders are checked.
    """

    problems: dict[str, str]
    outsiders: tuple[int, ...] = ()
    unchecked: str = ""

    def notes(self) -> list[str]:
        """One line per finding, for the SuperLink's log."""
        lines = [f"WARNING: {name}: {why}" for name, why in self.problems.items()]
        lines += [f"WARNING: node {node_id} is registered with the SuperLink but not enrolled in the registry (a key "
                  f"kept in the reused --database): it can connect but gets no work; remove it with `flwr supernode "
                  f"unregister {node_id} fedcl` (the `fedcl` connection of docs/flower-deployment.md §5)"
                  for node_id in self.outsiders]
        if self.unchecked:
            lines.append(f"WARNING: cannot list the SuperLink's nodes ({self.unchecked}): node ids kept from the "
                         "registry and keys registered outside it are not checked")
        return lines


def register_enrolled(path: str | Path, env: Mapping[str, str], names: Sequence[str] | None = None) -> Registration:
    """Register enrolled keys with a running SuperLink (``--enable-supernode-auth``) and record their node ids.

    Keys the SuperLink already holds (a restart with the same ``--database``) keep the node id the
    registry has for them, if the SuperLink lists that node id. The SuperLink's other nodes (keys
    registered outside the registry) are reported as outsiders.

    Parameters
    ----------
    path : str or Path
        The registry file.
    env : mapping
        From :func:`~fedcl.federated.flower.flwr_cli.flwr_home_env`.
    names : sequence of str, optional
        Only these nodes (default: all).

    Returns
    -------
    Registration
        Enrolled nodes that get no work and why, and the SuperLink's nodes outside the registry.
    """
    from fedcl.federated.flower.flwr_cli import FlwrError, list_nodes, register_supernodes

    path = registry_path(path)
    entries = [e for e in read_registry(path) if names is None or e.name in names]
    ids: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as keys:  # flwr reads keys from files
        for i, entry in enumerate(entries):
            key_file = Path(keys) / f"{i}.pub"
            key_file.write_text(entry.key + "\n")
            (node_id,) = register_supernodes([key_file], env, exist_ok=True)
            if node_id is not None:
                ids[entry.name] = node_id
    registry = record_node_ids(path, ids) if ids else read_registry(path)
    try:
        live = {int(n["node-id"]): str(n.get("status", "")) for n in list_nodes(env)}
    except FlwrError as err:
        live, unchecked = None, str(err)
    else:
        unchecked = ""
    problems = {}
    for entry in entries:
        if entry.name in ids:
            continue
        if entry.node_id is None:  # "already in use", and never recorded here
            problems[entry.name] = ("its key was registered with the SuperLink without the registry, so its node id "
                                    "is unknown and it gets no work: start the SuperLink with a new --database, or "
                                    "give the node a new key")
        elif live is not None and live.get(entry.node_id, "unregistered") == "unregistered":
            problems[entry.name] = (f"its key was registered before, but the SuperLink has no node {entry.node_id} "
                                    "(the registry's node id) or has unregistered it, so it gets no work: start the "
                                    "SuperLink with the --database the registry was used with, or a new one")
    known = {e.node_id for e in registry if e.node_id is not None}
    outsiders = () if names is not None or live is None else tuple(
        node_id for node_id, status in live.items() if node_id not in known and status != "unregistered")
    return Registration(problems, outsiders, unchecked)


class EnrolledGrid:
    """A Grid that lets only enrolled nodes take part, under their enrolled name and partition id.

    Nodes connected under a key that is not enrolled (or not with that node id) get no messages;
    a train reply whose node record (name, partition id) differs from the enrolment of the node
    that sent it is dropped, with a warning in the server log. Everything else goes to ``grid``.
    It has the methods of flwr's ``Grid`` without subclassing it, so this module loads without flwr.

    Parameters
    ----------
    grid : Grid
        The SuperLink's grid.
    enrolments : sequence of Enrolment
        The registry; entries without a node id are not registered yet and cannot take part.
    """

    def __init__(self, grid: Grid, enrolments: Sequence[Enrolment]) -> None:
        self._grid = grid
        self._enrolled = {e.node_id: e for e in enrolments if e.node_id is not None}
        self._announced: set[int] = set()

    def wrap_transport(self, wrap: Callable) -> EnrolledGrid:
        """Put ``wrap(grid)`` between this check and the SuperLink's grid (returns self). A wrapper that waits
        for replies belongs there: a reply this check drops has still arrived."""
        self._grid = wrap(self._grid)
        return self

    @property
    def enrolled(self) -> list[Enrolment]:
        """The enrolled nodes that can take part (registered with the SuperLink): the fleet."""
        return list(self._enrolled.values())

    def set_run(self, run) -> None:
        self._grid.set_run(run)

    @property
    def run(self):
        return self._grid.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> list[int]:
        ids = list(self._grid.get_node_ids())
        for node_id in ids:
            if node_id not in self._announced:  # once per node: ties Flower's node ids in this log to names
                self._announced.add(node_id)
                entry = self._enrolled.get(node_id)
                if entry is None:
                    _log.warning("node %s is connected but not enrolled: it gets no work", node_id)
                else:
                    _log.info("node %s is %s (partition %s)", node_id, entry.name, entry.partition)
        return [i for i in ids if i in self._enrolled]

    def get_nodes(self):
        enrolled = set(self.get_node_ids())
        return [node for node in self._grid.get_nodes() if node.node_id in enrolled]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return self._checked(self._grid.pull_messages(message_ids))

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        return self._checked(self._grid.send_and_receive(messages, timeout=timeout))

    def _checked(self, replies: Iterable[Message]) -> list[Message]:
        from fedcl.federated.flower._records import NODE_KEY, read_node_record  # torch: the ServerApp has it

        kept = []
        for reply in replies:
            if reply.has_error() or NODE_KEY not in reply.content:  # errors and secure-aggregation steps
                kept.append(reply)
                continue
            node_id = reply.metadata.src_node_id
            name, partition = read_node_record(reply.content)
            entry = self._enrolled.get(node_id)
            if entry is None:
                _log.warning("reply from node %s (%s, partition %s) dropped: not enrolled", node_id, name, partition)
            elif (name, partition) != (entry.name, entry.partition):
                _log.warning("reply from node %s dropped: it says %s (partition %s), but its key is enrolled as "
                             "%s (partition %s): fix the node's --data/--node-name/--partition-id", node_id, name,
                             partition, entry.name, entry.partition)
            else:
                kept.append(reply)
        return kept


def enrolled_grid(grid: Grid, environ: Mapping[str, str] | None = None) -> Grid | EnrolledGrid:
    """``grid`` behind :class:`EnrolledGrid` when the SuperLink runs with a registry (:data:`REGISTRY_ENV`),
    else ``grid`` itself. Raises ConfigError when the registry is named but missing or malformed."""
    value = (os.environ if environ is None else environ).get(REGISTRY_ENV, "")
    if not value:
        return grid
    path = registry_path(value)
    if not path.is_file():
        raise ConfigError(f"{REGISTRY_ENV}={path}: no node registry there")
    entries = read_registry(path)
    _log.info("node registry %s: %d enrolled, %d registered with the SuperLink", path, len(entries),
              sum(e.node_id is not None for e in entries))
    return EnrolledGrid(grid, entries)


def _last_rounds(history: Sequence[Mapping]) -> tuple[dict[str, int | None], dict[str, list[tuple[int, str]]]]:
    """Per node name in the history: the last round whose aggregation included its reply (None if none did),
    and the rounds it was set aside in, with the reason."""
    last: dict[str, int | None] = {}
    excluded: dict[str, list[tuple[int, str]]] = {}
    for record in history:
        for name, node in record.get("nodes", {}).items():
            last.setdefault(name, None)
            if node.get("excluded"):  # replied, but its update was set aside: not in this round's aggregate
                excluded.setdefault(name, []).append((int(record["round"]), str(node.get("reason") or "")))
            else:
                last[name] = max(last[name] or 0, int(record["round"]))
    return last, excluded


def fleet_view(enrolments: Sequence[Enrolment] | None, history: Sequence[Mapping] = (),
               live: Sequence[Mapping] | None = None, evaluation: Mapping | None = None) -> list[dict]:
    """One row per node: enrolled nodes first (registry order), then nodes seen only in the history or on the SuperLink.

    Parameters
    ----------
    enrolments : sequence of Enrolment, optional
        The registry (None: no registry given).
    history : sequence of dict
        A run's ``history.jsonl`` records.
    live : sequence of dict, optional
        The SuperLink's nodes (:func:`~fedcl.federated.flower.flwr_cli.list_nodes`); None when not asked.
    evaluation : dict, optional
        The run's ``fleet.json`` (the nodes' own evaluation, :mod:`.fleet`); None when there is none.

    Returns
    -------
    list of dict
        ``name``, ``partition``, ``node_id``, ``status`` (the SuperLink's ``online`` / ``offline`` /
        ``registered`` (never connected) / ``unregistered``; ``not registered`` for an enrolled key the
        SuperLink does not know; ``enrolled`` when the SuperLink was not asked; ``not enrolled`` for a
        node outside the registry; ``-`` with neither), ``since`` (when it went online or offline),
        ``last_round`` (last round whose aggregation included its reply, or None) and ``excluded`` (list of
        ``{"round", "reason"}``); with ``evaluation``, also ``auroc`` and ``fpr`` (at its threshold) as the node
        reported them, or None.
    """
    last, excluded = _last_rounds(history)
    by_id = {int(n["node-id"]): n for n in live} if live is not None else {}
    rows, seen_ids, seen_names = [], set(), set()

    def row(name, partition, node_id, status, since=""):
        seen_names.add(name)
        found = {"name": name, "partition": partition, "node_id": node_id, "status": status, "since": since,
                 "last_round": last.get(name), "excluded": [{"round": r, "reason": why}
                                                            for r, why in excluded.get(name, [])]}
        if evaluation is not None:
            reported = evaluation.get("nodes", {}).get(name, {})
            found.update(auroc=reported.get("auroc"), fpr=reported.get("fpr"))
        return found

    for entry in enrolments or []:
        node = by_id.get(entry.node_id) if entry.node_id is not None else None
        if live is None:
            status, since = "enrolled", ""
        elif node is None:
            status, since = "not registered", ""
        else:
            seen_ids.add(entry.node_id)
            status = str(node.get("status", ""))
            since = {"online": node.get("online-at"), "offline": node.get("offline-at")}.get(status) or ""
        rows.append(row(entry.name, entry.partition, entry.node_id, status, str(since)))
    outsider = "not enrolled" if enrolments is not None else "-"
    for name in last:
        if name not in seen_names:
            rows.append(row(name, None, None, outsider))
    for node_id, node in by_id.items():
        if node_id not in seen_ids and node.get("status") != "unregistered":
            rows.append(row("-", None, node_id, f"{node.get('status')} ({outsider})" if enrolments is not None
                            else str(node.get("status"))))
    return rows


def format_fleet(rows: Sequence[Mapping]) -> str:
    """:func:`fleet_view` rows as a text table, then one line per exclusion."""
    evaluated = any("auroc" in r for r in rows)
    header = ("NAME", "PARTITION", "NODE ID", "STATUS", "SINCE", "LAST ROUND", "EXCLUDED",
              *(("AUROC", "FPR") if evaluated else ()))

    def number(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    cells = [header] + [
        (r["name"], "-" if r["partition"] is None else str(r["partition"]),
         "-" if r["node_id"] is None else str(r["node_id"]), r["status"], r["since"] or "-",
         "-" if r["last_round"] is None else str(r["last_round"]), str(len(r["excluded"])),
         *((number(r.get("auroc")), number(r.get("fpr"))) if evaluated else ()))
        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    exclusions = [f"  {r['name']}  round {x['round']}: {x['reason'] or 'no reason recorded'}"
                  for r in rows for x in r["excluded"]]
    if exclusions:
        lines += ["", "set aside by the server rule (history.jsonl):", *exclusions]
    return "\n".join(lines)
