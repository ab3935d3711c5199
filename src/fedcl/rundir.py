"""The files of a run directory, in one place for the steps that write and read them."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import fields
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
CHECKPOINT_FILE = "checkpoint.pt"  # a Flower run's: θ and g after the last finished round
TRAINING_CHECKPOINT = "checkpoint-train.pt"  # an in-process run's federation after its last finished round,
CHECKPOINT_NODES = "checkpoint-nodes"  # and its node detectors fitted so far, a file each (until model.pt)
#: Settings a resumed run may change: node data paths are node-local, and more rounds extend the run.
RESUMABLE_CHANGES = ("data", "rounds")
FLEET_FILE = "fleet.json"  # a Flower run's nodes' own evaluation, with fleet.md and fleet_roc.png
# What a run writes besides its config and history: a new run into the folder removes the last run's first,
# so that an interrupted run never leaves its config beside an older model, metrics, report or checkpoint.
RESULT_FILES = (MODEL_FILE, METRICS_FILE, SCORES_FILE, REPORT_FILE, ROC_PLOT, TRAINING_PLOT, CHECKPOINT_FILE,
                TRAINING_CHECKPOINT, FLEET_FILE, "fleet.md", "fleet_roc.png")


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
    """Remove the files an earlier run wrote into ``run`` (:data:`RESULT_FILES`, its checkpoint's node folder)."""
    for name in RESULT_FILES:
        (run / name).unlink(missing_ok=True)
        (run / (name + ".tmp")).unlink(missing_ok=True)  # a write cut short (atomic saves)
    shutil.rmtree(run / CHECKPOINT_NODES, ignore_errors=True)


def _changed_settings(saved: FedCLConfig, config: FedCLConfig) -> list[str]:
    # Under differential privacy (either level) the noise was calibrated for the saved rounds: more would overspend ε.
    resumable = ("data",) if math.isfinite(saved.dp_epsilon) else RESUMABLE_CHANGES
    return [f"{f.name} {getattr(saved, f.name)!r} -> {getattr(config, f.name)!r}" for f in fields(FedCLConfig)
            if f.name not in resumable and getattr(saved, f.name) != getattr(config, f.name)]


def check_run_dir(out_dir: str | Path, config: FedCLConfig, resume: bool, checkpoint: str = CHECKPOINT_FILE) -> None:
    """Refuse, in one line, a run that would overwrite or wrongly continue the run in ``out_dir``.

    Without ``resume`` ``out_dir`` must hold no ``checkpoint`` (a Flower run's by default; an earlier run
    would be lost); with it, it must hold one, written with the same settings (``rounds`` may grow).

    Raises
    ------
    ConfigError
    """
    out = Path(out_dir)
    has_checkpoint = (out / checkpoint).is_file()
    if not resume and has_checkpoint:
        raise ConfigError(f"{out} holds the checkpoint of an earlier run: add --resume to continue it, "
                          "or give another --out")
    if not resume:
        return
    if not has_checkpoint:
        raise ConfigError(f"{out}: no {checkpoint} to resume from; leave out --resume to start a new run")
    if not (out / CONFIG_FILE).is_file():
        raise ConfigError(f"{out}: {checkpoint} without the {CONFIG_FILE} it was written with: cannot "
                          "check the settings; start a new run in another --out")
    # A checkpoint from before min_rows_per_round trained its small nodes local_epochs a round.
    changed = _changed_settings(load_config(out / CONFIG_FILE, base=FedCLConfig(min_rows_per_round=0)), config)
    if changed:
        raise ConfigError(f"{out}: --resume with other settings than the checkpointed run ({'; '.join(changed)}): "
                          "resume with the same settings, or start a new run in another --out")


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
