"""Readers for the three on-disk layouts of N-BaIoT (UCI, Kaggle, per-client)."""

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._errors import DataError
from ._schema import COLUMNS, N_FEATURES

__all__ = ["NodeData", "KAGGLE_DEVICES", "LAYOUTS", "detect_layout", "read_dataset", "read_feature_csv"]

#: Layout names accepted by :func:`read_dataset` (besides ``"auto"``).
LAYOUTS = ("uci", "kaggle", "clients")

#: Device names of the Kaggle layout, in the order of their file number (1-9).
KAGGLE_DEVICES = (
    "Danmini_Doorbell",
    "Ecobee_Thermostat",
    "Ennio_Doorbell",
    "Philips_B120N10_Baby_Monitor",
    "Provision_PT_737E_Security_Camera",
    "Provision_PT_838_Security_Camera",
    "Samsung_SNH_1011_N_Webcam",
    "SimpleHome_XCS7_1002_WHT_Security_Camera",
    "SimpleHome_XCS7_1003_WHT_Security_Camera",
)

_KAGGLE_FILE = re.compile(r"(\d+)\.(benign|gafgyt\.[^.]+|mirai\.[^.]+)\.csv")
_UCI_ATTACK_DIRS = ("gafgyt", "mirai")
_CLIENT_DIRS = ("normal", "test_normal", "abnormal")
# The only spellings of a missing value we accept; anything else that is not
# a number ("NA", "null", "NAN") is more likely corruption than intent.
_MISSING = ("", "nan", "NaN")
# What pandas' C float parser accepts (plus inf spellings, reported separately);
# used only on the slow path to point at the offending cell.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class NodeData:
    """Raw rows of one federated node (a device, or a client folder).

    ``eq=False``: fields are arrays, so field-wise ``==`` has no single truth
    value; nodes compare by identity.

    Attributes
    ----------
    name : str
        Device name (UCI, Kaggle) or client folder name (clients layout).
    benign : ndarray of shape (n, 115), float64
        Benign rows in file order; may contain NaN (missing values).
    attack : ndarray of shape (m, 115), float64
        Attack rows; shape (0, 115) when the node saw no attack.
    attack_family : ndarray of shape (m,), str
        Family of each attack row, e.g. ``"gafgyt.scan"`` or ``"mirai.udp"``;
        ``"attack"`` when the layout does not record it (clients layout).
    benign_test : ndarray of shape (k, 115), float64, or None
        Explicitly held-out benign rows (clients layout's ``test_normal``),
        else None.
    ordered : bool
        True when rows are in capture order (UCI, Kaggle), False for the
        randomly sampled clients layout.
    """

    name: str
    benign: np.ndarray
    attack: np.ndarray
    attack_family: np.ndarray
    benign_test: np.ndarray | None
    ordered: bool


# --------------------------------------------------------------------------- CSV


def _natural_key(name: str) -> tuple:
    """Sort key that orders "Client-2" before "Client-10"."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _line_bounds(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline excluded) byte offsets of each line."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    ends = newlines if raw.endswith(b"\n") else np.append(newlines, len(raw))
    starts = np.concatenate(([0], newlines + 1))[: len(ends)]
    return starts, ends


def _fields(raw: bytes, start: int, end: int) -> list[str]:
    """Decoded fields of one line (slow path and error messages only)."""
    text = raw[start:end].decode("utf-8", "replace").rstrip("\r")
    return text.lstrip("\ufeff").split(",")


def _check_header(raw: bytes, start: int, end: int, path: Path) -> None:
    """Raise DataError unless the header row names COLUMNS in order."""
    names = [f.strip().strip('"').strip() for f in _fields(raw, start, end)]
    for j, expected in enumerate(COLUMNS):
        got = names[j] if j < len(names) else None
        if got == expected:
            continue
        if got is None:
            reason = f"header has {len(names)} columns, expected {N_FEATURES}"
        else:
            reason = f"header names {got!r} where {expected!r} is expected"
            if _NUMBER.fullmatch(got):
                reason += " (the file seems to have no header row)"
        raise DataError(reason, path=path, line=1, column=expected)
    if len(names) > N_FEATURES:
        raise DataError(
            f"header has {len(names)} columns, expected {N_FEATURES}",
            path=path, line=1, column=names[N_FEATURES] or N_FEATURES + 1,
        )


def _count_error(raw, start, end, found, path, line) -> DataError:
    """DataError for a line whose field count is not N_FEATURES."""
    if not raw[start:end].strip():
        return DataError(f"empty line, expected {N_FEATURES} fields", path=path, line=line)
    if found < N_FEATURES:
        # Name the first missing column: that is where the row was cut.
        return DataError(
            f"{found} fields, expected {N_FEATURES} (truncated row)",
            path=path, line=line, column=COLUMNS[found],
        )
    return DataError(
        f"{found} fields, expected {N_FEATURES}", path=path, line=line, column=N_FEATURES + 1
    )


def _find_bad_cell(raw, starts, ends, first, stop, path) -> None:
    """Slow scan that raises DataError at the first cell pandas could not parse."""
    for i in range(first, stop):
        for j, field in enumerate(_fields(raw, starts[i], ends[i])):
            if field in _MISSING:
                continue
            text = field.strip()
            if not _NUMBER.fullmatch(text):
                raise DataError(
                    f"text {text!r} in a numeric column", path=path, line=i + 1, column=COLUMNS[j]
                )
            if math.isinf(float(text)):
                raise _inf_error(text, path, i + 1, j)


def _inf_error(text, path, line, j) -> DataError:
    """DataError for an infinite or float64-overflowing value."""
    return DataError(
        f"non-finite value {text!r} (infinite or beyond float64 range)",
        path=path, line=line, column=COLUMNS[j],
    )


def _read_matrix(path: Path, *, header: bool) -> np.ndarray:
    """Read one N-BaIoT CSV into a (n, 115) float64 array, validating every cell.

    The fast path is pandas' C parser; exact line/column locations are found by
    cheap byte-level checks (field counts) or, only when parsing fails, by a
    Python scan.
    """
    raw = path.read_bytes()
    if not raw:
        raise DataError("empty file (0 bytes)", path=path)
    starts, ends = _line_bounds(raw)
    stop = len(ends)
    # Trailing blank lines are an editor artefact, not data; interior ones are errors.
    while stop and not raw[starts[stop - 1] : ends[stop - 1]].strip():
        stop -= 1
    if stop == 0:
        raise DataError("empty file (only blank lines)", path=path)
    first = 1 if header else 0
    if header:
        _check_header(raw, starts[0], ends[0], path)
    if stop <= first:
        raise DataError("no rows (the file has only a header)", path=path)

    # Field counts from comma positions: pandas would silently pad a truncated
    # row with NaN, which we could not tell apart from legal missing values.
    commas = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord(","))
    counts = (
        np.searchsorted(commas, ends[first:stop]) - np.searchsorted(commas, starts[first:stop]) + 1
    )
    bad = np.flatnonzero(counts != N_FEATURES)
    if bad.size:
        i = first + int(bad[0])
        raise _count_error(raw, starts[i], ends[i], int(counts[bad[0]]), path, i + 1)

    try:
        values = pd.read_csv(
            io.BytesIO(raw),
            header=None,
            skiprows=first,
            dtype=np.float64,
            na_values=list(_MISSING),
            keep_default_na=False,
            engine="c",
        ).to_numpy(dtype=np.float64)
    except ValueError as exc:  # includes ParserError and UnicodeDecodeError
        _find_bad_cell(raw, starts, ends, first, stop, path)
        raise DataError(f"cannot parse file: {exc}", path=path) from exc
    if values.shape != (stop - first, N_FEATURES):
        # Only quoted fields spanning lines can get here; N-BaIoT never quotes.
        raise DataError(
            f"parsed {values.shape[0]} rows from {stop - first} lines "
            "(quoted fields are not supported)",
            path=path,
        )
    inf = np.isinf(values)
    if inf.any():
        r, j = (int(k) for k in np.argwhere(inf)[0])  # first in file order
        i = first + r
        raise _inf_error(_fields(raw, starts[i], ends[i])[j].strip(), path, i + 1, j)
    return values


def read_feature_csv(path) -> np.ndarray:
    """One feature file with the 115-column header (e.g. from ``fedcl features``): (n, 115) float64.

    Raises
    ------
    DataError
        On any malformed content, naming the file, line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    return _read_matrix(path, header=True)


def _empty_attack() -> tuple[np.ndarray, np.ndarray]:
    return np.empty((0, N_FEATURES), dtype=np.float64), np.array([], dtype=str)


def _stack(parts: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (family, rows) pairs into an attack matrix and family labels."""
    if not parts:
        return _empty_attack()
    attack = np.concatenate([rows for _, rows in parts])
    family = np.concatenate([np.full(len(rows), fam) for fam, rows in parts])
    return attack, family


# ------------------------------------------------------------------- layouts


def _existing_dir(path) -> Path:
    root = Path(path)
    if not root.exists():
        raise DataError("path does not exist", path=root)
    if not root.is_dir():
        raise DataError("not a folder: pass the data set's folder", path=root)
    return root


def _subdirs(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: _natural_key(d.name))


def _is_uci_device(d: Path) -> bool:
    return (d / "benign_traffic.csv").is_file() or any(
        (d / f"{fam}_attacks").is_dir() for fam in _UCI_ATTACK_DIRS
    )


def _is_client(d: Path) -> bool:
    return any((d / sub).is_dir() for sub in _CLIENT_DIRS)


def _is_kaggle(root: Path) -> bool:
    return any(_KAGGLE_FILE.fullmatch(p.name) and p.is_file() for p in root.iterdir())


def _read_uci_device(d: Path) -> NodeData:
    benign_file = d / "benign_traffic.csv"
    if not benign_file.is_file():
        raise DataError("no benign rows: benign_traffic.csv not found", path=d)
    benign = _read_matrix(benign_file, header=True)
    parts = []
    for fam in _UCI_ATTACK_DIRS:
        folder = d / f"{fam}_attacks"
        if folder.is_dir():
            files = sorted(folder.glob("*.csv"), key=lambda p: _natural_key(p.name))
            parts += [(f"{fam}.{f.stem}", _read_matrix(f, header=True)) for f in files]
    attack, family = _stack(parts)
    # resolve(): a device passed as "." still gets its folder's name.
    return NodeData(d.resolve().name, benign, attack, family, None, True)


def _read_uci(root: Path) -> list[NodeData]:
    if _is_uci_device(root):
        return [_read_uci_device(root)]
    devices = [d for d in _subdirs(root) if _is_uci_device(d)]
    if not devices:
        raise DataError("no UCI device folders (with benign_traffic.csv) found", path=root)
    return [_read_uci_device(d) for d in devices]


def _read_kaggle(root: Path) -> list[NodeData]:
    groups: dict[int, dict[str, Path]] = {}
    for p in root.iterdir():
        match = _KAGGLE_FILE.fullmatch(p.name)
        if not match or not p.is_file():
            continue  # the Kaggle set also ships device_info.csv, features.csv, ...
        number = int(match.group(1))
        if not 1 <= number <= len(KAGGLE_DEVICES):
            raise DataError(
                f"unknown device number {number}, expected 1-{len(KAGGLE_DEVICES)}", path=p
            )
        groups.setdefault(number, {})[match.group(2)] = p
    if not groups:
        raise DataError("no Kaggle files (like 1.benign.csv) found", path=root)
    nodes = []
    for number in sorted(groups):
        files = groups[number]
        name = KAGGLE_DEVICES[number - 1]
        if "benign" not in files:
            raise DataError(
                f"no benign rows for device {number} ({name}): {number}.benign.csv not found",
                path=root,
            )
        benign = _read_matrix(files.pop("benign"), header=True)
        parts = [
            (fam, _read_matrix(files[fam], header=True)) for fam in sorted(files, key=_natural_key)
        ]
        attack, family = _stack(parts)
        nodes.append(NodeData(name, benign, attack, family, None, True))
    return nodes


def _read_client(d: Path) -> NodeData:
    normal = d / "normal" / "data.csv"
    if not normal.is_file():
        raise DataError("no benign rows: normal/data.csv not found", path=d)
    benign = _read_matrix(normal, header=False)
    test_file = d / "test_normal" / "data.csv"
    benign_test = _read_matrix(test_file, header=False) if test_file.is_file() else None
    attack_file = d / "abnormal" / "data.csv"
    if attack_file.is_file():
        attack = _read_matrix(attack_file, header=False)
        family = np.full(len(attack), "attack")
    else:
        attack, family = _empty_attack()
    return NodeData(d.resolve().name, benign, attack, family, benign_test, False)


def _read_clients(root: Path) -> list[NodeData]:
    if _is_client(root):
        return [_read_client(root)]
    clients = [d for d in _subdirs(root) if _is_client(d)]
    if not clients:
        raise DataError("no client folders (with normal/data.csv) found", path=root)
    return [_read_client(d) for d in clients]


_READERS = {"uci": _read_uci, "kaggle": _read_kaggle, "clients": _read_clients}


def detect_layout(path) -> str:
    """Tell which on-disk layout a data set folder uses.

    Parameters
    ----------
    path : str or os.PathLike
        Data set folder (or, for UCI and clients, a single device or client
        folder).

    Returns
    -------
    layout : {"uci", "kaggle", "clients"}
        ``"uci"``: ``<Device>/benign_traffic.csv`` and
        ``<Device>/{gafgyt,mirai}_attacks/*.csv``; ``"kaggle"``: flat files
        ``1.benign.csv``, ``1.gafgyt.combo.csv``, ...; ``"clients"``:
        ``Client-N/{normal,test_normal,abnormal}/data.csv`` without header.

    Raises
    ------
    DataError
        If the path does not exist, is not a folder, matches no layout, or
        matches more than one.
    """
    root = _existing_dir(path)
    subdirs = _subdirs(root)
    probes = {
        "uci": _is_uci_device(root) or any(_is_uci_device(d) for d in subdirs),
        "kaggle": _is_kaggle(root),
        "clients": _is_client(root) or any(_is_client(d) for d in subdirs),
    }
    found = [name for name, hit in probes.items() if hit]
    if not found:
        raise DataError(
            "no known layout: expected <Device>/benign_traffic.csv (uci), "
            "1.benign.csv (kaggle) or Client-N/normal/data.csv (clients)",
            path=root,
        )
    if len(found) > 1:
        raise DataError(
            f"matches several layouts ({', '.join(found)}); pass the layout explicitly",
            path=root,
        )
    return found[0]


def read_dataset(path, layout="auto") -> list[NodeData]:
    """Read every node of an N-BaIoT data set, validating every cell.

    Parameters
    ----------
    path : str or os.PathLike
        Data set folder; for the UCI and clients layouts also a single device
        or client folder.
    layout : {"auto", "uci", "kaggle", "clients"}, default="auto"
        On-disk layout; ``"auto"`` calls :func:`detect_layout`.

    Returns
    -------
    nodes : list of NodeData
        One per device (UCI, Kaggle) or client folder, sorted naturally by
        name ("Client-2" before "Client-10").

    Raises
    ------
    DataError
        On an unknown layout name, a missing path, a node without benign rows
        and any malformed file: empty file or no rows, wrong header names,
        wrong field count on a line, text in a numeric column, or an infinite
        value. The message names the file, line (header = line 1) and column.
        Empty cells, ``nan`` and ``NaN`` are legal missing values (NaN).
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}, expected one of: auto, {', '.join(LAYOUTS)}")
    root = _existing_dir(path)
    if layout == "auto":
        layout = detect_layout(root)
    nodes = _READERS[layout](root)
    return sorted(nodes, key=lambda node: _natural_key(node.name))
