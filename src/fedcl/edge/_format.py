"""The files of a gateway bundle and the checks that a directory is one, for the writer and the reader."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fedcl.errors import InputError

FORMAT = "fedcl-bundle"
# 2: personal bundles may combine their views weighted (shared_weight); 3: relative scores; 4: a personal
# bundle's views (two or three) each with a scale and a weight (scales, weights: own_scale, shared_weight before)
FORMAT_VERSION = 4
MANIFEST_FILE = "bundle.json"  # metadata, the scoring constants, and a SHA-256 of every other file
ENCODERS_FILE = "encoders.onnx"  # one graph: an input and an output per view (x_shared -> z_shared, ...)
ARRAYS_FILE = "arrays.npz"  # per view: scaler mean/scale, embedding mean/std, references (and their spacing)
ARRAY_NAMES = ("scaler_mean", "scaler_scale", "mean", "std", "references")
SPACING_NAMES = ("radii", "spacing")  # a view that scores relative distances (version 3) has these too
# Keys bundle.json must have for scoring; the rest (created, fedcl_version, ...) is information.
REQUIRED_KEYS = ("format", "version", "node", "views", "threshold", "window", "n_neighbors", "clip",
                 "leakage_guard", "feature_names", "files")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(manifest: dict) -> str:
    """Hex SHA-256 of everything that decides a bundle's scores: bundle.json without its creation time
    (its ``files`` entry holds the other files' hashes), so two exports of one model hash the same."""
    scoring = {k: v for k, v in manifest.items() if k != "created"}
    return hashlib.sha256(json.dumps(scoring, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest(bundle: str | Path) -> dict:
    """bundle.json of ``bundle``, checked: the format, its version, the scoring keys and every file's hash.

    Raises
    ------
    InputError
        One line saying what is wrong: not a bundle, a newer format, a missing key, a changed file.
    """
    bundle = Path(bundle)
    path = bundle / MANIFEST_FILE
    if not path.is_file():
        raise InputError(f"{bundle}: not a fedcl bundle (no {MANIFEST_FILE}); write one with `fedcl export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not a fedcl bundle manifest (format is not {FORMAT!r})")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > FORMAT_VERSION:
        raise InputError(f"{path}: bundle format version {manifest.get('version')!r}; this fedcl reads "
                         f"version {FORMAT_VERSION} and older: update fedcl on the gateway")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise InputError(f"{path}: missing key(s) {', '.join(missing)}")
    for name, expected in manifest["files"].items():
        if Path(name).name != name:  # a name, never a path out of the bundle
            raise InputError(f"{path}: file name {name!r} is not a plain file name")
        file = bundle / name
        if not file.is_file():
            raise InputError(f"{bundle}: {name} is missing")
        if file_sha256(file) != expected:
            raise InputError(f"{bundle}: {name} does not match its SHA-256 in {MANIFEST_FILE} "
                             "(changed or damaged after export)")
    return manifest
