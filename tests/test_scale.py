"""The full-scale path at a tiny size: benchmarks/scale.py's generator, the pyarrow reader, spilled attack rows."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fedcl.config import FedCLConfig
from fedcl.data import read_dataset
from fedcl.data import _readers as readers
from fedcl.pipeline import training

from conftest import NBAIOT

ROOT = Path(__file__).resolve().parents[1]
FEDMSE = NBAIOT / "fedmse-iid"  # the real rows the repo carries, so the tests run without ../shared


def _scale():
    spec = importlib.util.spec_from_file_location("scale", ROOT / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_file_rows_follow_the_archive():
    scale = _scale()
    full = scale.file_rows(scale.FULL)
    assert sum(full.values()) == 7_062_606 and len(full) == 9 + 9 * 5 + 7 * 5  # two devices without Mirai
    assert sum(n for p, n in full.items() if p.endswith("benign_traffic.csv")) == 555_932
    small = scale.file_rows(2_000)
    assert small.keys() == full.keys() and all(n >= 3 for n in small.values())
    assert sum(small.values()) >= 2_000


def test_generated_set_reads_as_the_uci_layout_and_is_reused(tmp_path):
    # Prepare
    scale = _scale()
    out = scale.build(tmp_path / "rows-2000", 2_000, FEDMSE)
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.csv")}

    # Act
    nodes = read_dataset(out)  # layout detected
    again = scale.build(tmp_path / "rows-2000", 2_000, FEDMSE)

    # Assert
    assert [n.name for n in nodes] == sorted(scale.ROWS)
    rows = scale.file_rows(2_000)
    for n in nodes:
        assert len(n.benign) == rows[f"{n.name}/benign_traffic.csv"]
        assert len(n.attack) == sum(k for p, k in rows.items() if p.startswith(f"{n.name}/") and "attacks" in p)
        assert set(n.attack_family) <= {f"gafgyt.{a}" for a in scale.GAFGYT} | {f"mirai.{a}" for a in scale.MIRAI}
    assert again == out and stamp == {p: p.stat().st_mtime_ns for p in out.rglob("*.csv")}  # not rewritten


def test_arrow_path_reads_what_the_checked_path_reads():
    for path, header in [(FEDMSE / "Client-1" / "abnormal" / "data.csv", False),
                         (FEDMSE / "Client-2" / "test_normal" / "data.csv", False)]:
        checked = readers._read_checked(path, header)
        np.testing.assert_array_equal(readers._read_arrow(path, header, np.float64), checked)  # bit for bit
        as32 = readers._read_arrow(path, header, np.float32)
        assert as32.dtype == np.float32
        np.testing.assert_array_equal(as32, checked.astype(np.float32))  # rounded from float64, as scoring does


@pytest.mark.parametrize("cell", ["NAN", "inf", "-Infinity", "1.5.2"])
def test_cells_pyarrow_accepts_still_fail_as_before(tmp_path, cell):
    path = tmp_path / "data.csv"
    row = ["1"] * 115
    path.write_text(",".join(row) + "\n" + ",".join(row[:7] + [cell] + row[8:]) + "\n")
    assert readers._read_arrow(path, False, np.float32) is None  # left to the checked path
    with pytest.raises(readers.DataError, match="line 2"):
        readers._read_matrix(path, header=False, attack=True, attack_dtype=np.float32)


def test_values_beyond_float32_stay_finite(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(",".join(["1e39"] + ["-1e300"] + ["2"] * 113) + "\n")
    rows = readers._read_matrix(path, header=False, attack=True, attack_dtype=np.float32)
    assert rows.dtype == np.float32 and np.isfinite(rows).all() and rows[0, 0] > 3e38 and rows[0, 1] < -3e38


def test_spilled_attack_rows_score_as_in_memory(tmp_path, monkeypatch):
    config = FedCLConfig(data=str(FEDMSE))
    in_memory = training.load_splits(config)
    monkeypatch.setattr(training, "SPILL_BYTES", 1)
    spilled = training.load_splits(config)
    assert all(isinstance(s.attack, np.memmap) for s in spilled)
    assert not any(isinstance(s.attack, np.memmap) for s in in_memory)
    for a, b in zip(in_memory, spilled):
        assert a.name == b.name and a.train.dtype == np.float64 and a.attack.dtype == np.float32
        np.testing.assert_array_equal(a.attack, b.attack)
        np.testing.assert_array_equal(a.train, b.train)
    spilled[0].attack[0, 0] = 7.0  # copy-on-write: a caller may still write, in its own memory


def test_iter_splits_matches_load_splits():
    config = FedCLConfig(data=str(FEDMSE), leakage_guard="on")
    for a, b in zip(training.load_splits(config), training.iter_splits(config), strict=True):
        assert a.name == b.name
        for k in ("train", "val", "test_benign", "attack"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


@pytest.mark.parametrize("node", ["Client-1", "a,b"])  # the second needs quotes: pandas writes it
def test_scores_csv_reads_back(tmp_path, node):
    import pandas as pd

    from fedcl.pipeline.scoring import write_scores

    scores = pd.DataFrame({"node": [node, node], "label": [0, 1], "family": ["benign", "mirai.udp"],
                           "score": [0.1, 1.2345678901234567e-07], "prediction": [0, 1]})
    write_scores(scores, tmp_path / "scores.csv")
    back = pd.read_csv(tmp_path / "scores.csv")
    assert list(back.columns) == list(scores.columns)
    assert back["node"].tolist() == [node, node] and back["score"].tolist() == scores["score"].tolist()
