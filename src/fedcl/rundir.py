"""The files of a run directory, in one place for the steps that write and read them."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "config.toml"
MODEL_FILE = "model.pt"
HISTORY_FILE = "history.jsonl"
METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.csv"
REPORT_FILE = "report.md"


def read_history(run_dir: str | Path) -> list[dict]:
    """Per-round records of a run, as far as training got."""
    path = Path(run_dir) / HISTORY_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
