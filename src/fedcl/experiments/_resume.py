"""A results CSV written run by run, so that an interrupted experiment resumes where it stopped."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


class ResultsFile:
    """``path`` holds one row per run, written as each run ends; ``key`` names the columns that
    identify a run, ``columns`` every column, in file order (so rows appended later line up)."""

    def __init__(self, path: Path, key: Sequence[str], columns: Sequence[str]):
        self.path = path
        self.key = list(key)
        self.columns = list(columns)

    def rows(self) -> pd.DataFrame:
        """Every run written so far (an empty frame with the file's columns if none)."""
        if not self.path.is_file():
            return pd.DataFrame(columns=self.columns)
        return pd.read_csv(self.path)

    def done(self) -> set[tuple]:
        """The keys of the runs written so far, as tuples in ``key`` order."""
        return set(self.rows()[self.key].itertuples(index=False, name=None))

    def append(self, row: dict) -> None:
        """Write one run and flush it to disk before the next one starts."""
        missing = set(self.key) - set(row)
        if missing:
            raise ValueError(f"a result row needs its key columns; missing {sorted(missing)}")
        frame = pd.DataFrame([row]).reindex(columns=self.columns)
        with open(self.path, "a", newline="") as f:
            frame.to_csv(f, header=f.tell() == 0, index=False)
            f.flush()
