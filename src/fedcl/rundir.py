"""The files of a run directory, in one place for the steps that write and read them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fedcl.config import SCHEMAS, FedCLConfig, load_config
from fedcl.errors import ConfigError

CONFIG_FILE = "config.toml"
MODEL_FILE = "model.pt"
HISTORY_FILE = "history.jsonl"
METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.csv"
REPORT_FILE = "report.md"
ROC_PLOT = "roc.png"
TRAINING_PLOT = "training.png"
CHECKPOINT_FILE = "checkpoint.pt"  # a Flower run's, every round
FLEET_FILE = "fleet.json"  # a Flower run's nodes' own evaluation, with fleet.md and fleet_roc.png
# What a run writes besides its config and history: a new run into the folder removes the last run's first,
# so that an interrupted run never leaves its config beside an older model, metrics, report or checkpoint.
RESULT_FILES = (MODEL_FILE, METRICS_FILE, SCORES_FILE, REPORT_FILE, ROC_PLOT, TRAINING_PLOT, CHECKPOINT_FILE,
                FLEET_FILE, "fleet.md", "fleet_roc.png")


def prepare_run_dir(run_dir: str | Path) -> Path:
    """Create the run directory (and its parents), or say in one line why it cannot be one."""
    run = Path(run_dir)
    try:
        run.mkdir(parents=True, exist_ok=True)
        probe = run / ".fedcl-write-test"
        probe.touch()
        probe.unlink()
    except FileExistsError:
        raise ConfigError(f"{run}: is a file, not a folder (--out)") from None
    except NotADirectoryError:
        raise ConfigError(f"{run}: a part of this path is a file, not a folder (--out)") from None
    except OSError as e:
        raise ConfigError(f"{run}: cannot write the run directory here ({e.strerror}) (--out)") from None
    return run


def clear_results(run: Path) -> None:
    """Remove the files an earlier run wrote into ``run`` (:data:`RESULT_FILES`)."""
    for name in RESULT_FILES:
        (run / name).unlink(missing_ok=True)


def append_history(run_dir: Path, entry: dict) -> None:
    # Appended as it happens, so a crash keeps every finished round.
    with (run_dir / HISTORY_FILE).open("a") as f:
        f.write(json.dumps(entry) + "\n")


def read_history(run_dir: str | Path) -> list[dict]:
    """Per-round records of a run, as far as training got."""
    path = Path(run_dir) / HISTORY_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def load_run_config(run_dir: str | Path) -> FedCLConfig:
    """The resolved config a trained run directory was written with."""
    run = Path(run_dir)
    if not (run / MODEL_FILE).is_file() or not (run / CONFIG_FILE).is_file():
        raise ConfigError(f"{run}: not a trained run directory (no {MODEL_FILE} or {CONFIG_FILE}); run `fedcl train` first")
    # A run saved before a key existed trained without it: its detectors are not personal, its small
    # nodes ran local_epochs a round and used their rows themselves as references, its scores were distances.
    return load_config(run / CONFIG_FILE, base=FedCLConfig(personalisation="off", min_rows_per_round=0,
                                                           rows_per_reference=1, relative_distance=False))


def load_model(run_dir: str | Path) -> dict:
    """model.pt as written by :func:`fedcl.pipeline.train` or the Flower server (tensors only:
    ``weights_only=True``)."""
    import torch

    return torch.load(Path(run_dir) / MODEL_FILE, weights_only=True)


def load_windows(run_dir: str | Path) -> dict[str, int]:
    """Each node's vote window, chosen on its benign validation rows at training (empty for Flower runs)."""
    return dict(load_model(run_dir).get("windows", {}))


def load_columns(run_dir: str | Path) -> tuple[str, ...]:
    """The feature columns the run's model reads, in order (saved by training; N-BaIoT's 115 for a run saved
    before columns were recorded)."""
    from fedcl.data import COLUMNS

    saved = load_model(run_dir)
    if "columns" in saved:
        return tuple(saved["columns"])
    if load_run_config(run_dir).schema != "nbaiot":
        raise ConfigError(f"{run_dir}: the run does not record which columns its model reads; train it again")
    return COLUMNS


def check_schema(run_dir: str | Path, schema: str) -> None:
    """ConfigError unless the run was trained with ``schema`` (``--schema`` of evaluate and detect)."""
    if schema not in SCHEMAS:
        raise ConfigError(f"--schema {schema}: choose one of {', '.join(SCHEMAS)}")
    trained = load_run_config(run_dir).schema
    if schema != trained:
        raise ConfigError(f"{run_dir}: the run was trained with --schema {trained}, not {schema}")


def check_columns(run_dir: str | Path, columns: Sequence[str]) -> None:
    """ConfigError unless ``columns`` (the data's, in order) are the ones the run's model was trained on."""
    expected = load_columns(run_dir)
    columns = tuple(columns)
    if columns == expected:
        return
    lacks = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    what = "; ".join(part for part in (
        f"lacks {', '.join(lacks)}" if lacks else "",
        f"also has {', '.join(extra)}" if extra else "",
    ) if part) or "has them in another order"
    raise ConfigError(f"{run_dir}: the model reads {len(expected)} columns, but the data's {len(columns)} differ: "
                      f"the data {what}")
