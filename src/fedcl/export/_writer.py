"""One node's detector of a trained run, written as a bundle directory (format: fedcl.edge._format)."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fedcl import __version__
from fedcl.data import COLUMNS
from fedcl.edge import ARRAYS_FILE, ENCODERS_FILE, FORMAT, FORMAT_VERSION, MANIFEST_FILE, file_sha256
from fedcl.errors import ConfigError
from fedcl.export._onnx import encoders_to_onnx
from fedcl.model import FedCLDetector, PersonalDetector
from fedcl.rundir import MODEL_FILE, load_model, load_run_config


def export_node(run_dir: str | Path, node: str | None, out: str | Path) -> Path:
    """Write the bundle of ``node`` (the only node when None) of the trained run ``run_dir`` to ``out``.

    Raises
    ------
    ConfigError
        No trained run at ``run_dir``, a run without per-node detectors (Flower), a run with
        ``acceptance_margin``, an unknown node, or an ``out`` that exists and is not an empty directory.
    """
    from fedcl.pipeline import load_detectors

    run, out = Path(run_dir), Path(out)
    _check_out(out)
    config = load_run_config(run)
    saved = load_model(run)
    if not saved["nodes"]:
        raise ConfigError(f"{run}: the run holds no per-node detectors (a Flower run); export from a run "
                          "trained with `fedcl train` or `fedcl run`")
    if config.acceptance_margin:
        raise ConfigError(f"{run}: its nodes accept what the others' federation views find benign "
                          "(acceptance_margin), which a gateway bundle cannot hold yet; set acceptance_margin = 0 "
                          "in its config.toml to export the node's detector alone")
    names = list(saved["nodes"])
    if node is None and len(names) != 1:
        raise ConfigError(f"the model has {len(names)} nodes; choose one with --node ({', '.join(names)})")
    node = node or names[0]
    if node not in names:
        raise ConfigError(f"no node {node!r} in {run} (nodes: {', '.join(names)})")
    detector = load_detectors(run)[node]
    return write_bundle(detector, out, node=node, window=int(saved.get("windows", {}).get(node, 1)),
                        leakage_guard=config.leakage_guard, model_sha256=file_sha256(run / MODEL_FILE))


def write_bundle(detector: FedCLDetector | PersonalDetector, out: str | Path, *, node: str, window: int,
                 leakage_guard: str, model_sha256: str) -> Path:
    """Write a fitted node detector as a bundle directory ``out`` (created; it must not hold anything).

    Written to a temporary directory beside ``out`` and renamed into place, so ``out`` is either a
    whole bundle or untouched.
    """
    out = Path(out)
    _check_out(out)
    views = _views(detector)
    n_features = len(views["shared"].scaler_.mean_)
    if n_features != len(COLUMNS):
        raise ConfigError(f"the detector reads {n_features} features; a bundle holds N-BaIoT's {len(COLUMNS)}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise ConfigError(f"{out}: cannot write a bundle here ({e.strerror}) (--out)") from None
    try:
        encoders_to_onnx({v: d.encoder for v, d in views.items()}, n_features, work / ENCODERS_FILE)
        np.savez(work / ARRAYS_FILE, **{f"{v}.{name}": a for v, d in views.items() for name, a in _arrays(d).items()})
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "node": node,
            "views": list(views),
            **({"combine": detector.combine, "scales": detector.scales_, "weights": detector.weights_}
               if isinstance(detector, PersonalDetector) else {}),
            "threshold": float(detector.threshold_),
            "window": int(window),
            "n_neighbors": int(views["shared"].n_neighbors),
            **({"local_weight": float(views["shared"].local_weight)} if views["shared"].relative else {}),
            "clip": float(views["shared"].clip),
            "leakage_guard": leakage_guard,
            "feature_names": list(COLUMNS),
            "model_sha256": model_sha256,
            "fedcl_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "files": {name: file_sha256(work / name) for name in (ENCODERS_FILE, ARRAYS_FILE)},
        }
        (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        work.chmod(0o755)  # mkdtemp makes it private to its owner; a bundle is meant to be copied and read
        work.rename(out)  # replaces an empty directory too
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def _check_out(out: Path) -> None:
    """ConfigError unless ``out`` is free for a bundle: absent, or an empty directory."""
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; give a new directory (--out)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file, not a directory (--out)")


def _views(detector: FedCLDetector | PersonalDetector) -> dict[str, FedCLDetector]:
    """View name -> FedCLDetector, in the order the bundle stores them."""
    return detector.views if isinstance(detector, PersonalDetector) else {"shared": detector}


def _arrays(view: FedCLDetector) -> dict[str, np.ndarray]:
    """The fitted arrays a view scores with, in the dtypes the torch path computes in."""
    return {
        "scaler_mean": np.asarray(view.scaler_.mean_, dtype=np.float64),
        "scaler_scale": np.asarray(view.scaler_.scale_, dtype=np.float64),
        "mean": view.mean_.numpy().astype(np.float32),
        "std": view.std_.numpy().astype(np.float32),
        "references": view.references_.numpy().astype(np.float32),
    } | ({"radii": view.radii_.numpy().astype(np.float32), "spacing": np.float64(view.spacing_)}
         if view.relative else {})
