"""Readers for the three on-disk layouts of N-BaIoT (UCI, Kaggle, per-client), with N-BaIoT's 115 columns or,
with ``schema="auto"``, the numeric columns of any header (flow tables)."""

import functools
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ._errors import AmbiguousLayout, DataError
from ._schema import COLUMNS, N_FEATURES

__all__ = ["NodeData", "KAGGLE_DEVICES", "LAYOUTS", "SCHEMAS", "detect_layout", "iter_dataset", "read_dataset",
           "read_feature_csv"]

#: Layout names accepted by :func:`read_dataset` (besides ``"auto"``).
LAYOUTS = ("uci", "kaggle", "clients")

#: Column schemas of :func:`read_dataset`: N-BaIoT's 115 named columns, or the numeric columns of any header.
SCHEMAS = ("nbaiot", "auto")

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
# Schema auto also reads Zeek's "-" (an unset field, e.g. a connection's duration) as missing.
_AUTO_MISSING = (*_MISSING, "-")
# Said after a header that is not N-BaIoT's: the table may well be a flow table.
_AUTO_HINT = " (not an N-BaIoT table? --schema auto reads the numeric columns of any header)"
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
    benign : ndarray of shape (n, n_features), float64
        Benign rows in file order; may contain NaN (missing values).
        ``n_features`` is 115 for N-BaIoT, ``len(columns)`` in general.
    attack : ndarray of shape (m, n_features), float64 (or the ``attack_dtype`` read with)
        Attack rows; shape (0, n_features) when the node saw no attack.
    attack_family : ndarray of shape (m,), str (object: one string per file, shared by its rows)
        Family of each attack row, e.g. ``"gafgyt.scan"`` or ``"mirai.udp"``;
        ``"attack"`` when the layout does not record it (clients layout).
    benign_test : ndarray of shape (k, n_features), float64, or None
        Explicitly held-out benign rows (clients layout's ``test_normal``),
        else None.
    ordered : bool
        True when rows are in capture order (UCI, Kaggle), False for the
        randomly sampled clients layout.
    columns : tuple of str
        Name of each column of the row arrays: ``COLUMNS`` for N-BaIoT, the
        header's numeric columns with ``schema="auto"``.
    dropped_columns : tuple of str
        Header columns not read (``schema="auto"``: text or without any value).
    """

    name: str
    benign: np.ndarray
    attack: np.ndarray
    attack_family: np.ndarray
    benign_test: np.ndarray | None
    ordered: bool
    columns: tuple[str, ...] = COLUMNS
    dropped_columns: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class _Fields:
    """How to read a file's fields: every column name in file order, the positions read, the missing spellings."""

    names: tuple[str, ...]
    used: tuple[int, ...]
    missing: tuple[str, ...] = _MISSING


_NBAIOT = _Fields(COLUMNS, tuple(range(N_FEATURES)))


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
            elif j == 0:
                reason += _AUTO_HINT
        raise DataError(reason, path=path, line=1, column=expected)
    if len(names) > N_FEATURES:
        raise DataError(
            f"header has {len(names)} columns, expected {N_FEATURES}",
            path=path, line=1, column=names[N_FEATURES] or N_FEATURES + 1,
        )


def _count_error(raw, start, end, found, path, line, fields: _Fields) -> DataError:
    """DataError for a line whose field count is not the number of columns."""
    width = len(fields.names)
    if not raw[start:end].strip():
        return DataError(f"empty line, expected {width} fields", path=path, line=line)
    if found < width:
        # Name the first missing column: that is where the row was cut.
        return DataError(
            f"{found} fields, expected {width} (truncated row)",
            path=path, line=line, column=fields.names[found],
        )
    quoted = b'"' in raw[start:end]  # fields are split on every comma, quoted or not
    return DataError(f"{found} fields, expected {width}"
                     + (" (a quoted field holding a comma is not supported: drop or unquote that column)"
                        if quoted else ""), path=path, line=line, column=width + 1)


def _find_bad_cell(raw, starts, ends, first, stop, path, fields: _Fields) -> None:
    """Slow scan that raises DataError at the first read cell pandas could not parse."""
    for i in range(first, stop):
        line = _fields(raw, starts[i], ends[i])
        for j in fields.used:
            field = line[j]
            if field in fields.missing:
                continue
            text = field.strip()
            if not _NUMBER.fullmatch(text):
                raise DataError(
                    f"text {text!r} in a numeric column", path=path, line=i + 1, column=fields.names[j]
                )
            if math.isinf(float(text)):
                raise _inf_error(text, path, i + 1, fields.names[j])


def _inf_error(text, path, line, column) -> DataError:
    """DataError for an infinite or float64-overflowing value."""
    return DataError(
        f"non-finite value {text!r} (infinite or beyond float64 range)", path=path, line=line, column=column
    )


def _lines(path: Path) -> tuple[bytes, np.ndarray, np.ndarray, int]:
    """The file's bytes, line bounds and the number of lines without trailing blank ones; DataError if empty."""
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
    return raw, starts, ends, stop


def _parse(raw, starts, ends, first, stop, path, fields: _Fields) -> np.ndarray:
    """Lines ``first`` to ``stop - 1`` as a (rows, len(fields.used)) float64 array, in ``fields.used`` order.

    The fast path is pandas' C parser; exact line/column locations are found by
    cheap byte-level checks (field counts) or, only when parsing fails, by a
    Python scan.
    """
    _check_field_counts(raw, starts, ends, first, stop, path, fields)
    in_file_order = sorted(fields.used)  # what pandas returns with usecols
    every = in_file_order == list(range(len(fields.names)))  # N-BaIoT: the plain (fastest) call
    try:
        values = pd.read_csv(
            io.BytesIO(raw),
            header=None,
            skiprows=first,
            nrows=stop - first,
            usecols=None if every else in_file_order,
            dtype=np.float64 if every else {j: np.float64 for j in in_file_order},
            na_values=list(fields.missing),
            keep_default_na=False,
            engine="c",
        ).to_numpy(dtype=np.float64)
    except ValueError as exc:  # includes ParserError and UnicodeDecodeError
        _find_bad_cell(raw, starts, ends, first, stop, path, fields)
        raise DataError(f"cannot parse file: {exc}", path=path) from exc
    if values.shape != (stop - first, len(fields.used)):
        # Only quoted fields spanning lines can get here; N-BaIoT never quotes.
        raise DataError(
            f"parsed {values.shape[0]} rows from {stop - first} lines "
            "(quoted fields are not supported)",
            path=path,
        )
    if in_file_order != list(fields.used):
        values = values[:, [in_file_order.index(j) for j in fields.used]]
    inf = np.isinf(values)
    if inf.any():
        r, k = (int(v) for v in np.argwhere(inf)[0])  # first in file order
        i, j = first + r, fields.used[k]
        raise _inf_error(_fields(raw, starts[i], ends[i])[j].strip(), path, i + 1, fields.names[j])
    return values


def _read_matrix(path: Path, *, header: bool, attack: bool = False, attack_dtype=np.float64) -> np.ndarray:
    """Read one N-BaIoT CSV into a (n, 115) float64 array (``attack_dtype`` for an attack file), validating
    every cell.

    A well-formed file takes pyarrow's multithreaded parser (:func:`_read_arrow`); anything it does not
    vouch for (a bad cell, count or header, an odd spelling) takes the checked path below, which raises the
    one-line error naming file, line and column, or returns the same values, bit for bit.
    """
    dtype = attack_dtype if attack else np.float64
    fast = _read_arrow(path, header, dtype)
    if fast is not None:
        return fast
    return _as_dtype(_read_checked(path, header), dtype)


def _as_dtype(values: np.ndarray, dtype) -> np.ndarray:
    """``values`` as ``dtype``; to float32, finite values beyond its range (never in N-BaIoT) stay finite, at its
    largest magnitude, rather than become inf."""
    if values.dtype == dtype:
        return values
    big = np.finfo(dtype).max
    return np.clip(values, -big, big).astype(dtype)


def _arrow_options(header: bool):
    """pyarrow CSV options that accept only what the checked path accepts: no quoting, no skipped blank lines,
    only the missing spellings of ``_MISSING`` as missing; float64 cells."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [str(j) for j in range(N_FEATURES)]
    return (pacsv.ReadOptions(skip_rows=int(header), column_names=names, block_size=8 << 20),
            pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()), null_values=list(_MISSING),
                                 strings_can_be_null=False))


def _read_arrow(path: Path, header: bool, dtype) -> np.ndarray | None:
    """The file's rows as a (n, 115) ``dtype`` array through pyarrow, or None when the checked path must decide.

    Cells are parsed as float64 and then rounded, as the checked path's are: parsing straight to float32
    rounds once, not twice, and differs in the last bit of a few cells.

    Returned only when every cell parsed as a finite number or one of ``_MISSING``: pyarrow also reads
    "NAN", "inf" or "Infinity", which are errors here, so NaN that pyarrow did not mark missing, or any
    inf, sends the file to the checked path (as does a parse error, a wrong field count or a row without
    any value, which may be a blank line).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with path.open("rb") as f:
        first = f.readline()
    if header and _names(first) != list(COLUMNS):
        return None
    try:
        table = pacsv.read_csv(path, *_arrow_options(header))
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        return None
    if table.num_rows == 0:
        return None
    values = np.empty((table.num_rows, N_FEATURES), dtype=dtype)
    missing = 0
    for j in range(N_FEATURES):  # column by column into rows; each column freed once copied
        column = table.column(0)
        missing += column.null_count
        cells = column.to_numpy()  # float64, nulls (missing cells) as NaN
        if np.isinf(cells).any():
            return None
        values[:, j] = _as_dtype(cells, dtype)
        table = table.remove_column(0)
    del table, column, cells
    pa.default_memory_pool().release_unused()  # mimalloc would keep ~80 MB of the parser's buffers per 100 MB read
    if int(np.count_nonzero(np.isnan(values))) != missing:
        return None
    # pyarrow reads a blank line as a row of missing cells: let the checked path tell it from a row of empty cells.
    if missing >= N_FEATURES and np.isnan(values).all(axis=1).any():
        return None
    return values


def _names(line: bytes) -> list[str]:
    """The column names of a header line, as :func:`_check_header` reads them."""
    text = line.decode("utf-8", "replace").rstrip("\n").rstrip("\r").lstrip("\ufeff")
    return [f.strip().strip('"').strip() for f in text.split(",")]


def _read_checked(path: Path, header: bool) -> np.ndarray:
    """Read one N-BaIoT CSV into a (n, 115) float64 array, validating every cell (pandas after byte-level checks)."""
    raw, starts, ends, stop = _lines(path)
    first = 1 if header else 0
    if header:
        _check_header(raw, starts[0], ends[0], path)
    elif not any(f in _MISSING or _NUMBER.fullmatch(f.strip()) for f in _fields(raw, starts[0], ends[0])):
        # Headerless layout (clients), yet the first line holds names only: someone else's table.
        raise DataError("a header row where N-BaIoT's headerless rows are expected" + _AUTO_HINT,
                        path=path, line=1)
    if stop <= first:
        raise DataError("no rows (the file has only a header)", path=path)
    return _parse(raw, starts, ends, first, stop, path, _NBAIOT)


def _header_names(raw, starts, ends, path: Path) -> tuple[str, ...]:
    """The column names of a schema-auto file's first line; DataError if it is not a header."""
    names = tuple(f.strip().strip('"').strip() for f in _fields(raw, starts[0], ends[0]))
    if all(_NUMBER.fullmatch(n) or n in _AUTO_MISSING for n in names):
        raise DataError("no header row: --schema auto takes the column names from the first line",
                        path=path, line=1)
    if "" in names:
        raise DataError("a column without a name (a saved row index?): name it or remove it",
                        path=path, line=1, column=names.index("") + 1)
    return names


def _positions(names: tuple[str, ...], columns, path: Path) -> tuple[int, ...]:
    """Where each of ``columns`` is in the header ``names`` (a repeated name: its k-th occurrence)."""
    positions, seen = [], {}
    for name in columns:
        k = seen[name] = seen.get(name, -1) + 1
        found = [j for j, n in enumerate(names) if n == name]
        if k >= len(found):
            raise DataError(f"no column {name!r} in the header, which the model reads "
                            f"({len(columns)} columns: {_listing(columns)})", path=path, line=1)
        positions.append(found[k])
    return tuple(positions)


def _listing(names, most: int = 12) -> str:
    """Names for a message, comma-separated; a long list is cut after ``most``."""
    names = list(names)
    shown = ", ".join(names[:most])
    return shown + (f", … ({len(names) - most} more)" if len(names) > most else "")


class _AnyHeader:
    """Reader of schema-auto files: one header shared by every file; which columns hold text or no value.

    Called like :func:`_read_matrix` on each file of a data set, it returns every column (NaN in the
    text ones); :meth:`keep_numeric` then keeps, in every node, the columns that are numeric in
    every file.
    """

    def __init__(self) -> None:
        self.first: Path | None = None
        self.names: tuple[str, ...] = ()
        self.text: set[int] = set()  # columns whose first value is text in some file
        self.valued: set[int] = set()  # columns with at least one value in some file

    def __call__(self, path: Path, *, header: bool, attack: bool = False) -> np.ndarray:
        del header, attack  # schema auto needs names: every file has a header, even in the clients layout
        raw, starts, ends, stop = _lines(path)
        names = _header_names(raw, starts, ends, path)
        if self.first is None:
            self.first, self.names = path, names
        elif names != self.names:
            raise self._mismatch(path, names)
        if stop <= 1:
            raise DataError("no rows (the file has only a header)", path=path)
        # Types first: a column is text when its first value is; every other column is then
        # validated cell by cell as N-BaIoT's are (text or inf in it is an error, not a drop).
        _check_field_counts(raw, starts, ends, 1, stop, path, _Fields(names, ()))
        numeric = []
        for j, value in enumerate(_first_values(raw, stop, len(names), path)):
            if value is None:
                continue
            self.valued.add(j)
            if _NUMBER.fullmatch(value.strip()):
                numeric.append(j)
            else:
                self.text.add(j)
        rows = np.full((stop - 1, len(names)), np.nan)
        if numeric:
            rows[:, numeric] = _parse(raw, starts, ends, 1, stop, path, _Fields(names, tuple(numeric), _AUTO_MISSING))
        return rows

    def _mismatch(self, path: Path, names: tuple[str, ...]) -> DataError:
        if len(names) != len(self.names):
            reason = f"{len(names)} columns, but {self.first} has {len(self.names)}"
        else:
            j = next(j for j, (a, b) in enumerate(zip(names, self.names, strict=True)) if a != b)
            reason = f"column {j + 1} is {names[j]!r}, but {self.first} has {self.names[j]!r} there"
        return DataError(f"{reason}; every file of a data set needs the same header", path=path, line=1)

    def keep_numeric(self, nodes: list[NodeData], root: Path) -> list[NodeData]:
        """``nodes`` with only the columns numeric in every file (and with a value in some)."""
        kept = [j for j in range(len(self.names)) if j in self.valued and j not in self.text]
        if not kept:
            raise DataError(f"no numeric column in the header ({_listing(self.names)})", path=self.first or root)
        columns = tuple(self.names[j] for j in kept)
        dropped = tuple(n for j, n in enumerate(self.names) if j not in kept)

        def cut(rows):
            return None if rows is None else np.ascontiguousarray(rows[:, kept])

        return [replace(node, benign=cut(node.benign), attack=cut(node.attack), benign_test=cut(node.benign_test),
                        columns=columns, dropped_columns=dropped) for node in nodes]


def _first_values(raw: bytes, stop: int, width: int, path: Path) -> list[str | None]:
    """Each column's first value after the header that is not a missing spelling (None: it has none).

    Read as text a block of rows at a time, and only until every column has shown a value.
    """
    found: list[str | None] = [None] * width
    try:
        with pd.read_csv(io.BytesIO(raw), header=None, skiprows=1, nrows=stop - 1, dtype=str, na_filter=False,
                         engine="c", chunksize=1024) as blocks:
            for block in blocks:
                for j in (j for j in range(width) if found[j] is None):
                    present = block[j][~block[j].isin(_AUTO_MISSING)]
                    if not present.empty:
                        found[j] = present.iloc[0]
                if None not in found:
                    break
    except ValueError as exc:  # includes ParserError and UnicodeDecodeError
        raise DataError(f"cannot parse file: {exc}", path=path) from exc
    return found


def _check_field_counts(raw, starts, ends, first, stop, path, fields: _Fields) -> None:
    """DataError at the first line whose field count is not the number of columns.

    Counted from comma positions: pandas would silently pad a truncated row with NaN, which we
    could not tell apart from legal missing values.
    """
    commas = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord(","))
    counts = np.searchsorted(commas, ends[first:stop]) - np.searchsorted(commas, starts[first:stop]) + 1
    bad = np.flatnonzero(counts != len(fields.names))
    if bad.size:
        i = first + int(bad[0])
        raise _count_error(raw, starts[i], ends[i], int(counts[bad[0]]), path, i + 1, fields)


def read_feature_csv(path, columns=None) -> np.ndarray:
    """One feature file with a header row: (n, 115) float64 for N-BaIoT, else (n, len(columns)). An
    N-BaIoT file whose first line is numbers is read without a header, as the client layout's files are.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file, e.g. from ``fedcl features``.
    columns : sequence of str, optional
        Read these columns, by name and in this order, from whatever header the
        file has (``schema="auto"``: the columns a model was trained on; a
        repeated name is matched to its k-th occurrence). Default: the 115
        N-BaIoT columns, which the header must name in order.

    Raises
    ------
    DataError
        On any malformed content, naming the file, line and column; with
        ``columns``, also when the header lacks one of them.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, columns)
    if columns is None:
        return _read_matrix(path, header=not _starts_with_a_number(path))
    raw, starts, ends, stop = _lines(path)
    names = _header_names(raw, starts, ends, path)
    used = _positions(names, columns, path)
    if stop <= 1:
        raise DataError("no rows (the file has only a header)", path=path)
    return _parse(raw, starts, ends, 1, stop, path, _Fields(names, used, _AUTO_MISSING))


def _starts_with_a_number(path: Path) -> bool:
    """Whether the first cell is a number or a missing one, so the first line is a row, not a header."""
    with path.open("rb") as f:
        first = f.readline(4096).split(b",", 1)[0].strip().strip(b'"').strip().decode("utf-8", "replace")
    return bool(_NUMBER.fullmatch(first)) or first in _MISSING


def _read_parquet(path: Path, columns=None) -> np.ndarray:
    """A Parquet feature table (``fedcl features x.parquet``), checked as a CSV's header and cells are."""
    import pyarrow as pa  # only Parquet files need pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read as Parquet: {exc}", path=path) from None
    names = table.column_names
    if columns is None and names != list(COLUMNS):
        j = next((j for j, (a, b) in enumerate(zip(names, COLUMNS)) if a != b), min(len(names), N_FEATURES))
        got = repr(names[j]) if j < len(names) else "missing"
        expected = repr(COLUMNS[j]) if j < N_FEATURES else "no column"
        raise DataError(f"not the {N_FEATURES} N-BaIoT columns in order: column {j + 1} is {got}, "
                        f"expected {expected}", path=path)
    wanted = list(COLUMNS if columns is None else columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError("no such column in the file", path=path, column=missing[0])
    if table.num_rows == 0:
        raise DataError("no rows", path=path)
    try:
        # Nulls become NaN, the CSV readers' missing values.
        values = np.column_stack([table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in wanted])
    except (KeyError, pa.ArrowException) as exc:  # a text column, a name given twice
        raise DataError(f"cannot read the columns as numbers: {exc}", path=path) from None
    inf = np.isinf(values)
    if inf.any():
        r, j = (int(k) for k in np.argwhere(inf)[0])
        raise DataError(f"non-finite value {values[r, j]} in row {r + 1}", path=path, column=wanted[j])
    return values


def _empty_attack(width: int) -> tuple[np.ndarray, np.ndarray]:
    # A node without attack rows: float64 whatever dtype the others are read in; no row, so no value, differs.
    return np.empty((0, width), dtype=np.float64), np.array([], dtype=str)


def _stack(parts: list[tuple[str, np.ndarray]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (family, rows) pairs into an attack matrix and family labels.

    The labels are an object array holding one string per file: as fixed-width unicode they took 56 bytes a
    row, more than a tenth of the float32 row they label.
    Each part is released as soon as it is copied (``parts`` is emptied): the rows are held once, not twice
    (np.empty's pages are only resident once written).
    """
    if not parts:
        return _empty_attack(width)
    dtype = parts[0][1].dtype
    family = np.concatenate([np.full(len(rows), fam, dtype=object) for fam, rows in parts])
    attack = np.empty((len(family), width), dtype=dtype)
    lo = 0
    parts.reverse()
    while parts:
        _, rows = parts.pop()
        attack[lo : lo + len(rows)] = rows
        lo += len(rows)
        del rows
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


# Each layout reader takes ``read(path, header=...)``: _read_matrix (N-BaIoT) or an _AnyHeader (schema auto).


def _read_uci_device(d: Path, read) -> NodeData:
    benign_file = d / "benign_traffic.csv"
    if not benign_file.is_file():
        raise DataError("no benign rows: benign_traffic.csv not found", path=d)
    benign = read(benign_file, header=True)
    parts = []
    for fam in _UCI_ATTACK_DIRS:
        folder = d / f"{fam}_attacks"
        if folder.is_dir():
            files = sorted(folder.glob("*.csv"), key=lambda p: _natural_key(p.name))
            parts += [(f"{fam}.{f.stem}", read(f, header=True, attack=True)) for f in files]
    attack, family = _stack(parts, benign.shape[1])
    # resolve(): a device passed as "." still gets its folder's name.
    return NodeData(d.resolve().name, benign, attack, family, None, True)


def _uci_devices(root: Path) -> list[Path]:
    if _is_uci_device(root):
        return [root]
    devices = [d for d in _subdirs(root) if _is_uci_device(d)]
    if not devices:
        raise DataError("no UCI device folders (with benign_traffic.csv) found", path=root)
    return devices


def _read_uci(root: Path, read) -> Iterator[NodeData]:
    yield from (_read_uci_device(d, read) for d in _uci_devices(root))


def _kaggle_devices(root: Path) -> dict[int, dict[str, Path]]:
    """Device number -> {file kind ("benign", "gafgyt.combo", ...): path}, in number order."""
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
    return dict(sorted(groups.items()))


def _read_kaggle(root: Path, read) -> Iterator[NodeData]:
    for number, files in _kaggle_devices(root).items():
        name = KAGGLE_DEVICES[number - 1]
        if "benign" not in files:
            raise DataError(
                f"no benign rows for device {number} ({name}): {number}.benign.csv not found",
                path=root,
            )
        benign = read(files.pop("benign"), header=True)
        parts = [(fam, read(files[fam], header=True, attack=True)) for fam in sorted(files, key=_natural_key)]
        attack, family = _stack(parts, benign.shape[1])
        yield NodeData(name, benign, attack, family, None, True)


def _read_client(d: Path, read) -> NodeData:
    normal = d / "normal" / "data.csv"
    if not normal.is_file():
        raise DataError("no benign rows: normal/data.csv not found", path=d)
    benign = read(normal, header=False)
    test_file = d / "test_normal" / "data.csv"
    benign_test = read(test_file, header=False) if test_file.is_file() else None
    attack_file = d / "abnormal" / "data.csv"
    if attack_file.is_file():
        attack = read(attack_file, header=False, attack=True)
        family = np.full(len(attack), "attack", dtype=object)
    else:
        attack, family = _empty_attack(benign.shape[1])
    return NodeData(d.resolve().name, benign, attack, family, benign_test, False)


def _client_folders(root: Path) -> list[Path]:
    if _is_client(root):
        return [root]
    clients = [d for d in _subdirs(root) if _is_client(d)]
    if not clients:
        raise DataError("no client folders (with normal/data.csv) found", path=root)
    return clients


def _read_clients(root: Path, read) -> Iterator[NodeData]:
    yield from (_read_client(d, read) for d in _client_folders(root))


_READERS = {"uci": _read_uci, "kaggle": _read_kaggle, "clients": _read_clients}
# Each layout's nodes by name, in its reader's order, from folder and file names alone.
# resolve(): a device passed as "." still gets its folder's name.
_NODE_NAMES = {"uci": lambda root: [d.resolve().name for d in _uci_devices(root)],
               "kaggle": lambda root: [KAGGLE_DEVICES[n - 1] for n in _kaggle_devices(root)],
               "clients": lambda root: [d.resolve().name for d in _client_folders(root)]}


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
        raise AmbiguousLayout(
            f"matches several layouts ({', '.join(found)}); pass the layout explicitly",
            path=root,
        )
    return found[0]


def _layout_root(path, layout: str) -> tuple[Path, str]:
    """The data set's folder and its layout (``"auto"`` detected), or the readers' DataError."""
    if layout != "auto" and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}, expected one of: auto, {', '.join(LAYOUTS)}")
    root = _existing_dir(path)
    return root, detect_layout(root) if layout == "auto" else layout


def node_names(path, layout="auto") -> list[str]:
    """The names of a data set's nodes, in :func:`read_dataset`'s order and with its errors about the
    layout, from folder and file names alone (no row is read): what a SuperNode checks its
    ``--node-name`` against before it joins."""
    root, layout = _layout_root(path, layout)
    return _NODE_NAMES[layout](root)


def iter_dataset(path, layout="auto", attack_dtype=np.float64) -> Iterator[NodeData]:
    """The nodes of an N-BaIoT data set one at a time, in :func:`read_dataset`'s order, each read (and
    validated, with the same errors) when it is asked for: a caller that keeps only part of each node
    never holds every node's rows at once.

    Parameters
    ----------
    path, layout
        As for :func:`read_dataset` (``schema="nbaiot"``: a schema-auto data set needs every file's
        header before its first node).
    attack_dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Dtype of the attack rows (benign rows are float64). float32 halves their memory and changes no
        score: a detector casts the rows it scores to float32 first. A value is parsed as float64 and
        then rounded; a finite one beyond float32's range (never in N-BaIoT) is stored at float32's
        largest magnitude.
    """
    if attack_dtype not in (np.float64, np.float32):
        raise ValueError(f"attack_dtype must be float64 or float32, got {attack_dtype!r}")
    root, layout = _layout_root(path, layout)
    # Every layout reader yields in natural name order already (the Kaggle numbers follow the names).
    yield from _READERS[layout](root, functools.partial(_read_matrix, attack_dtype=attack_dtype))


def read_dataset(path, layout="auto", schema="nbaiot", attack_dtype=np.float64) -> list[NodeData]:
    """Read every node of a data set, validating every cell.

    Parameters
    ----------
    path : str or os.PathLike
        Data set folder; for the UCI and clients layouts also a single device
        or client folder.
    layout : {"auto", "uci", "kaggle", "clients"}, default="auto"
        On-disk layout; ``"auto"`` calls :func:`detect_layout`.
    schema : {"nbaiot", "auto"}, default="nbaiot"
        ``"nbaiot"``: N-BaIoT's 115 columns, named in order by each header
        (the clients layout has none). ``"auto"``: any header, the same in
        every file (the clients layout's files need one too); a column is
        read when it is numeric: its first value in every file is a number,
        and then every value must be (text or inf is an error, as for
        N-BaIoT). Text columns and columns without any value are dropped
        (``NodeData.dropped_columns``). Zeek's ``-`` also means missing.
    attack_dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Dtype of the attack rows (see :func:`iter_dataset`).

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
        With ``schema="auto"``: files whose headers differ, or a header
        without a numeric column.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}, expected one of: auto, {', '.join(LAYOUTS)}")
    if schema not in SCHEMAS:
        raise DataError(f"unknown schema {schema!r}, expected one of: {', '.join(SCHEMAS)}")
    if schema == "nbaiot":
        nodes = list(iter_dataset(path, layout, attack_dtype))
    else:
        root = _existing_dir(path)
        any_header = _AnyHeader()
        nodes = any_header.keep_numeric(list(_READERS[layout if layout != "auto" else detect_layout(root)](
            root, any_header)), root)
        if attack_dtype != np.float64:
            nodes = [replace(node, attack=_as_dtype(node.attack, attack_dtype)) for node in nodes]
    return sorted(nodes, key=lambda node: _natural_key(node.name))
