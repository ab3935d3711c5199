"""`fedcl export` and `fedcl detect --bundle`: the bundle scores as the torch path does, without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import NBAIOT
from fedcl import detect
from fedcl.cli import app
from fedcl.config import FedCLConfig
from fedcl.data import leakage_guard
from fedcl.edge import MANIFEST_FILE, load_bundle
from fedcl.errors import InputError
from fedcl.export import export_node
from fedcl.pipeline import load_splits, train

runner = CliRunner()
NODE = "Client-1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_torch_thread):
    """Personal runs with relative scores (two views, and three: tuned) and a plain one with absolute distances
    (as before the key), on the real fedmse-iid rows (tiny training), each with NODE's bundle."""
    root = tmp_path_factory.mktemp("export")
    made = {}
    for kind in ("weighted", "tuned", "off"):
        config = FedCLConfig(data=str(NBAIOT / "fedmse-iid"), rounds=1, local_steps=3, personalisation=kind,
                             relative_distance=kind != "off")
        run = train(config, root / f"run-{kind}")
        made[kind] = (run, config)
    exported = runner.invoke(app, ["export", "--model", str(made["weighted"][0]), "--node", NODE,
                                   "--out", str(root / "bundle-weighted")])
    assert exported.exit_code == 0, exported.output
    for kind in ("tuned", "off"):
        export_node(made[kind][0], NODE, root / f"bundle-{kind}")
    return {kind: (run, config, root / f"bundle-{kind}") for kind, (run, config) in made.items()}


def exact_scores(detector, rows: np.ndarray) -> np.ndarray:
    """Slow reference: the torch detector's scores with its own encoder and arrays, distances taken
    coordinate by coordinate in float64 (no ‖a‖² + ‖r‖² − 2a·r, which cancels near a reference)."""
    import torch

    from fedcl.model import COMBINE, PersonalDetector

    if isinstance(detector, PersonalDetector):
        return COMBINE[detector.combine](np.stack([exact_scores(view, rows) * detector.scales_[name]
                                                   for name, view in detector.views.items()]),
                                         np.array([detector.weights_[name] for name in detector.views]))
    with torch.inference_mode():
        z = detector.encoder.eval()(torch.from_numpy(detector.scaler_.transform(rows)))
        z = ((z - detector.mean_) / detector.std_).numpy().astype(np.float64)  # (rows, dim)
    refs = detector.references_.numpy().astype(np.float64)  # (references, dim)
    distances = np.sqrt(((z[:, None, :] - refs[None, :, :]) ** 2).sum(axis=2))  # (rows, references)
    k = min(detector.n_neighbors, len(refs))
    nearest = np.argsort(distances, axis=1)[:, :k]
    score = np.take_along_axis(distances, nearest, axis=1).mean(axis=1)
    if not detector.relative:
        return score
    radii = detector.radii_.numpy().astype(np.float64)
    return score / (detector.spacing_ + detector.local_weight * radii[nearest].mean(axis=1))


def node_rows(config: FedCLConfig) -> dict[str, np.ndarray]:
    """NODE's real rows by set, guarded as `fedcl detect` guards them."""
    split = next(s for s in load_splits(config) if s.name == NODE)
    return {name: leakage_guard(getattr(split, name), strict=True)
            for name in ("train", "val", "test_benign", "attack")}


@pytest.mark.parametrize("kind", ["weighted", "tuned", "off"])
def test_bundle_scores_equal_the_torch_path(runs, kind):
    # Prepare: every real row of the node: training, validation, benign test and attack rows
    run, config, bundle = runs[kind]
    rows = node_rows(config)
    torch_path, bundle_path = detect.from_run(run, NODE), detect.from_bundle(bundle)

    # Execute
    got = {name: bundle_path.detector.decision_function(x) for name, x in rows.items()}
    want = {name: torch_path.detector.decision_function(x) for name, x in rows.items()}
    exact = {name: exact_scores(torch_path.detector, x) for name, x in rows.items()}

    # Assert: equal to the torch model's scores on every row. decision_function itself rounds in float32
    # and sits up to ~1e-3 from its exact scores on rows near a reference (training rows), so it is
    # compared as is where those roundings are small: attack rows, far from every reference.
    assert type(torch_path.detector).__name__ == ("FedCLDetector" if kind == "off" else "PersonalDetector")
    assert len(bundle_path.detector.views) == {"weighted": 2, "tuned": 3, "off": 1}[kind]
    for name in rows:
        np.testing.assert_allclose(got[name], exact[name], rtol=1e-5, atol=0, err_msg=name)
    np.testing.assert_allclose(got["attack"], want["attack"], rtol=1e-5, atol=0)
    assert bundle_path.detector.threshold_ == torch_path.detector.threshold_
    assert (bundle_path.window, bundle_path.leakage_guard, bundle_path.node) == (torch_path.window, "strict", NODE)


def test_max_combine_matches_the_torch_path(runs):
    # Prepare
    run, config, bundle = runs["weighted"]
    rows = np.vstack(list(node_rows(config).values()))
    torch_detector, bundle_detector = detect.from_run(run, NODE).detector, load_bundle(bundle)
    torch_detector.combine = bundle_detector.combine = "max"

    # Execute
    got, want = bundle_detector.decision_function(rows), exact_scores(torch_detector, rows)

    # Assert
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)


def test_bundle_holds_what_one_node_needs(runs):
    # Prepare
    run, _, bundle = runs["weighted"]

    # Execute
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    again = load_bundle(bundle)

    # Assert
    assert sorted(p.name for p in bundle.iterdir()) == ["arrays.npz", "bundle.json", "encoders.onnx"]
    assert manifest["node"] == NODE and manifest["views"] == ["shared", "own"] and manifest["combine"] == "weighted"
    assert len(manifest["feature_names"]) == 115 and manifest["feature_names"][0] == "MI_dir_L5_weight"
    assert manifest["model_sha256"] == detect.from_run(run, NODE).model and manifest["scales"]["own"] > 0
    assert {"fedcl_version", "created", "threshold", "window"} <= set(manifest)
    assert manifest["local_weight"] == 0.5 and {"shared.radii", "own.spacing"} <= set(np.load(bundle / "arrays.npz"))
    assert again.content_hash == detect.from_bundle(bundle).model  # the hash the alerts carry


def test_bundle_path_imports_neither_torch_nor_flwr(runs, tmp_path):
    # Prepare: `fedcl detect --bundle` on a capture, in a fresh interpreter
    from fedcl.traffic import write_synthetic_capture

    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 300, seed=1)
    args = ["detect", str(capture), "--bundle", str(runs["off"][2]), "--alerts", str(tmp_path / "a")]
    script = (
        "import json, sys\n"
        "from fedcl.cli import app\n"
        f"args = {args!r}\n"
        "try:\n"
        "    app(args, standalone_mode=False)\n"
        "finally:\n"
        "    print(json.dumps(sorted(m for m in ('torch', 'flwr', 'onnxruntime') if m in sys.modules)))\n"
    )

    # Execute
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)

    # Assert
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["onnxruntime"]  # it scored, with ORT alone
    assert (tmp_path / "c.alerts.csv").is_file() and (tmp_path / "a").is_file()


def test_export_mistakes_exit_2_in_one_line(runs, tmp_path):
    # Prepare
    import shutil

    import torch

    run = str(runs["weighted"][0])
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    a_file = tmp_path / "f"
    a_file.write_text("")
    flower = tmp_path / "flower"  # a Flower run: the server holds no per-node detectors
    shutil.copytree(run, flower)
    saved = torch.load(flower / "model.pt", weights_only=True)
    torch.save({**saved, "nodes": {}}, flower / "model.pt")
    accepting = tmp_path / "accepting"  # nodes that accept the others' benign rows: a bundle holds one node
    shutil.copytree(run, accepting)
    config = accepting / "config.toml"
    config.write_text(config.read_text().replace("acceptance_margin = 0.0", "acceptance_margin = 0.7"))

    # Execute
    results = {
        "no run": runner.invoke(app, ["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o1")]),
        "unknown node": runner.invoke(app, ["export", "--model", run, "--node", "Nope", "--out", str(tmp_path / "o2")]),
        "no node": runner.invoke(app, ["export", "--model", run, "--out", str(tmp_path / "o3")]),
        "not empty": runner.invoke(app, ["export", "--model", run, "--node", NODE, "--out", str(full)]),
        "a file": runner.invoke(app, ["export", "--model", run, "--node", NODE, "--out", str(a_file)]),
        "flower run": runner.invoke(app, ["export", "--model", str(flower), "--out", str(tmp_path / "o4")]),
        "accepting": runner.invoke(app, ["export", "--model", str(accepting), "--node", NODE,
                                         "--out", str(tmp_path / "o5")]),
    }

    # Assert
    for case, result in results.items():
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (case, result.output)
    assert "Nope" in results["unknown node"].output and "Client-2" in results["no node"].output
    assert "Flower" in results["flower run"].output and "acceptance_margin" in results["accepting"].output
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3", "o4", "o5"))  # nothing half-written


def test_a_changed_or_foreign_bundle_is_refused(runs, tmp_path):
    # Prepare: a copy whose arrays were altered, one of a newer format, and a CSV to score
    import shutil

    bundle = runs["off"][2]
    changed, newer = tmp_path / "changed", tmp_path / "newer"
    shutil.copytree(bundle, changed)
    shutil.copytree(bundle, newer)
    with open(changed / "arrays.npz", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01")
    manifest = json.loads((newer / MANIFEST_FILE).read_text())
    (newer / MANIFEST_FILE).write_text(json.dumps({**manifest, "version": 99}))
    csv = str(NBAIOT / "uci-sample" / "Danmini_Doorbell" / "gafgyt_attacks" / "udp.csv")
    out = str(tmp_path / "o.csv")

    # Execute
    with pytest.raises(InputError, match="arrays.npz does not match"):
        load_bundle(changed)
    results = {
        "changed": runner.invoke(app, ["detect", csv, "--bundle", str(changed), "--out", out]),
        "newer": runner.invoke(app, ["detect", csv, "--bundle", str(newer), "--out", out]),
        "other node": runner.invoke(app, ["detect", csv, "--bundle", str(bundle), "--node", "Client-2", "--out", out]),
        "both": runner.invoke(app, ["detect", csv, "--bundle", str(bundle), "--model", str(runs["off"][0])]),
        "not a bundle": runner.invoke(app, ["detect", csv, "--bundle", str(tmp_path), "--out", out]),
    }

    # Assert
    for case, result in results.items():
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (case, result.output)
    assert "version 99" in results["newer"].output


@pytest.mark.parametrize("key, value, message", [
    *(("weights", {"shared": v, "own": 0.5}, "'shared' needs a finite weight in") for v in (None, "0.7", 1.5)),
    ("weights", {"shared": 0.9, "own": 0.9}, "weights of its views sum to 1.8"),
    *(("scales", {"shared": 1.0, "own": v}, "'own' needs a finite scale > 0") for v in (None, "2", 0.0, 1e309)),
    *(("shared_weight", v, "'shared' needs a finite weight in") for v in (None, "0.7", 1.5)),  # before version 4
    *(("own_scale", v, "'own' needs a finite scale > 0") for v in (None, "2", 0.0)),
    *(("local_weight", v, "relative scores need a finite local_weight") for v in (None, "0.5", -1.0, True, 1e309)),
])
def test_a_bundle_needs_the_weights_it_scores_with(runs, tmp_path, key, value, message):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(runs["weighted"][2], bundle)
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    if key in ("shared_weight", "own_scale"):  # as a bundle before version 4 held them
        scales, weights = manifest.pop("scales"), manifest.pop("weights")
        manifest |= {"version": 3, "own_scale": scales["own"], "shared_weight": weights["shared"]}
    (bundle / MANIFEST_FILE).write_text(json.dumps({**manifest, key: value}))

    with pytest.raises(InputError, match=message):
        load_bundle(bundle)


def test_a_bundle_of_format_3_scores_as_it_did(runs, tmp_path):
    import shutil

    # Prepare: NODE's bundle as version 3 wrote it (the own view's scale into shared units, the shared weight)
    bundle, old = runs["weighted"][2], tmp_path / "v3"
    shutil.copytree(bundle, old)
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    scales, weights = manifest.pop("scales"), manifest.pop("weights")
    assert scales["shared"] == 1.0
    (old / MANIFEST_FILE).write_text(json.dumps(manifest | {"version": 3, "own_scale": scales["own"],
                                                            "shared_weight": weights["shared"]}))
    rows = np.vstack(list(node_rows(runs["weighted"][1]).values()))

    # Execute
    got, new = load_bundle(old).decision_function(rows), load_bundle(bundle)

    # Assert: bit for bit what version 3 computed, combine(shared, own × own_scale) weighted by shared_weight
    from threadpoolctl import threadpool_limits

    from fedcl.edge._bundle import _CHUNK

    with threadpool_limits(limits=1, user_api="blas"):  # as decision_function scores: BLAS threads may round otherwise
        chunks = [new._score_chunk(rows[lo : lo + _CHUNK]) for lo in range(0, len(rows), _CHUNK)]
    shared, own = (np.concatenate([c[v] for c in chunks]) for v in ("shared", "own"))
    w = weights["shared"]
    np.testing.assert_array_equal(got, w * shared + (1 - w) * (own * scales["own"]))
    np.testing.assert_array_equal(got, new.decision_function(rows))


def test_bundle_detect_streams_as_it_scores_the_whole_capture(runs, tmp_path, monkeypatch):
    from fedcl.traffic import write_synthetic_capture
    from test_detect import assert_streamed_equals_whole

    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 20_000, seed=3)
    bundle = runs["weighted"][2]
    assert_streamed_equals_whole(capture, ["--bundle", str(bundle)], detect.from_bundle(bundle), 3, tmp_path,
                                 monkeypatch)
