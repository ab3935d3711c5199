"""The exception the data layer raises for bad input (and its one special case)."""

import os

from fedcl.errors import InputError

__all__ = ["AmbiguousLayout", "DataError"]


class DataError(InputError):
    """Malformed or unusable input data.

    ``str(err)`` is a single line that names where the problem is, as a
    user would look for it in an editor, then what is wrong, e.g.
    ``data/1.benign.csv, line 17, column HH_L5_mean: text 'abc' in a numeric
    column``. The CLI prints it and exits with code 2.

    Parameters
    ----------
    reason : str
        What is wrong, without location.
    path : str or os.PathLike, optional
        File or folder concerned.
    line : int, optional
        1-based line number; a header row counts as line 1.
    column : str or int, optional
        Column name, or 1-based field number when no name is known.

    Attributes
    ----------
    reason, path, line, column
        The constructor arguments, for programmatic use.
    """

    def __init__(self, reason, *, path=None, line=None, column=None):
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.column = column
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}")
        message = f"{', '.join(where)}: {reason}" if where else reason
        super().__init__(message)


class AmbiguousLayout(DataError):
    """A data folder that matches several layouts: only an explicit ``layout`` says how to read it."""
