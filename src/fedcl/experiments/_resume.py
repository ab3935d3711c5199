"""A results CSV written run by run, so that an interrupted experiment resumes where it stopped."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fedcl.config import FedCLConfig
from fedcl.errors import ConfigError
from fedcl.rundir import prepare_run_dir

SETTINGS = "settings.json"


def claim_folder(results: Path, config: FedCLConfig, quick: bool, sets: Sequence[str] = ()) -> None:
    """Make ``results``' folder a result folder for runs of these settings, or refuse in one line once it holds
    rows made with others (``quick``; any config key but ``data``, ``seed`` and the keys the experiment
    ``sets`` per run itself), which would be reported as if made with these. Rows written before settings
    were recorded are taken as they are."""
    out = prepare_run_dir(results.parent)
    ignored = {"data", "seed", *sets}
    # Non-finite floats as text: settings.json stays JSON that any reader (jq) takes
    settings = {k: v if not isinstance(v, float) or math.isfinite(v) else repr(v)
                for k, v in {"quick": quick, **config.to_dict()}.items() if k not in ignored}
    path = out / SETTINGS
    if results.is_file() and path.is_file():
        saved = json.loads(path.read_text())
        changed = [f"{k} {saved[k]!r} → {v!r}" for k, v in settings.items() if k in saved and saved[k] != v]
        if changed:
            raise ConfigError(f"{out} holds results of other settings ({', '.join(changed)}); give another --out, "
                              f"or the same settings to resume")
    path.write_text(json.dumps(settings, indent=1) + "\n")


class ResultsFile:
    """``path`` holds one row per run, written as each run ends; ``key`` names the columns that
    identify a run, ``columns`` every column, in file order (so rows appended later line up; default:
    each row's own keys, for rows that all have the same). ``replace``: the first row written replaces
    the file's earlier rows (a table that does not resume), so a run that fails before it has a row to
    write leaves them as they were."""

    def __init__(self, path: Path, key: Sequence[str], columns: Sequence[str] | None = None, replace: bool = False):
        self.path = path
        self.key = list(key)
        self.columns = None if columns is None else list(columns)
        self._replace = replace

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
        frame = pd.DataFrame([row]) if self.columns is None else pd.DataFrame([row]).reindex(columns=self.columns)
        with open(self.path, "w" if self._replace else "a", newline="") as f:
            frame.to_csv(f, header=f.tell() == 0, index=False)
            f.flush()
        self._replace = False
