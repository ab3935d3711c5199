"""simulate_network: layout, determinism, heterogeneity, mild attacks, detectability, realism vs N-BaIoT."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from conftest import NBAIOT
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from fedcl.baselines import KNNDetector
from fedcl.data import COLUMNS, read_dataset
from fedcl.traffic import ATTACKS, DEVICES, read_packets, simulate_network
from fedcl.cli.traffic import simulate_command

NO_MIRAI = {"Ecobee_Thermostat", "Samsung_SNH_1011_N_Webcam"}
SCALE = 0.3  # ~1,000-2,000 benign rows per device, 90-300 attack packets per file; ~3 s


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_network(tmp_path_factory.mktemp("sim"), seed=0, scale=SCALE)


@pytest.fixture(scope="module")
def nodes(sim):
    return {n.name: n for n in read_dataset(sim, "uci")}


def test_layout_reads_back_as_nine_uci_nodes_with_expected_families(sim, nodes):
    # Assert: nine devices, every BASHLITE attack, Mirai except on Ecobee and the Samsung webcam
    assert sorted(nodes) == sorted(d.name for d in DEVICES)
    for name, node in nodes.items():
        families = set(np.unique(node.attack_family))
        expected = {f"gafgyt.{a}" for a in ATTACKS["gafgyt"]}
        if name not in NO_MIRAI:
            expected |= {f"mirai.{a}" for a in ATTACKS["mirai"]}
        assert families == expected, name
        assert node.benign.shape[1] == 115 and node.ordered
        assert (sim / name / "benign_traffic.pcap").is_file()


def test_metadata_counts_every_row_and_csv_headers_are_columns(sim):
    meta = json.loads((sim / "SIMULATION.json").read_text())
    assert meta["seed"] == 0 and meta["scale"] == SCALE and meta["fedcl_version"]
    assert len(meta["files"]) == 9 + 9 * 5 + 7 * 5
    for rel, info in meta["files"].items():
        df = pd.read_csv(sim / rel)
        assert tuple(df.columns) == COLUMNS
        assert len(df) == info["rows"] > 0, rel
    assert meta["rows"] == sum(f["rows"] for f in meta["files"].values())


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    # Execute
    a = simulate_network(tmp_path / "a", seed=3, scale=0.03)
    b = simulate_network(tmp_path / "b", seed=3, scale=0.03)
    c = simulate_network(tmp_path / "c", seed=4, scale=0.03)

    # Assert
    files = sorted(p.relative_to(a) for p in a.rglob("*.csv"))
    assert len(files) == 89
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "SIMULATION.json").read_bytes() == (b / "SIMULATION.json").read_bytes()
    assert any((a / rel).read_bytes() != (c / rel).read_bytes() for rel in files)


def test_packet_sizes_are_ethernet_sizes(sim):
    # Prepare
    sizes = np.array([p.size for d in DEVICES for p in read_packets(sim / d.name / "benign_traffic.pcap")])

    # Assert: frames without FCS, 60 (padded minimum) to 1,514 bytes; mostly small packets,
    # some full frames from uploads and video
    assert sizes.min() == 60 and sizes.max() == 1514
    assert 0.02 < (sizes == 1514).mean() < 0.3 and np.median(sizes) < 150


def test_devices_differ(nodes):
    # Non-IID: every pair of devices has a different distribution of mean packet size (λ = 0.01)
    j = COLUMNS.index("MI_dir_L0.01_mean")
    names = sorted(nodes)
    stats = [ks_2samp(nodes[a].benign[:, j], nodes[b].benign[:, j]).statistic
             for i, a in enumerate(names) for b in names[i + 1:]]
    assert min(stats) > 0.1 and np.median(stats) > 0.3


def _send_rate(path, mac) -> float:
    """Median, over the packets the device sent, of how many it sent in the next second."""
    t = np.array([p.timestamp for p in read_packets(path) if p.src_mac == mac])
    return float(np.median(np.searchsorted(t, t + 1.0) - np.arange(len(t))))


def test_some_attacks_are_mild_others_floods(sim):
    # Prepare: intensities recorded in the metadata
    meta = json.loads((sim / "SIMULATION.json").read_text())["files"]
    device = DEVICES[0]
    mine = {rel: info for rel, info in meta.items() if rel.startswith(device.name) and "intensity" in info}
    mild = [rel for rel, info in mine.items() if info["intensity"] == "mild"]
    floods = [rel for rel, info in mine.items() if info["intensity"] == "flood"]
    assert mild and floods

    # Execute: measure the rates in the pcaps
    mild_rate = max(_send_rate(sim / rel.replace(".csv", ".pcap"), device.mac) for rel in mild)
    flood_rate = min(_send_rate(sim / rel.replace(".csv", ".pcap"), device.mac) for rel in floods)

    # Assert: mild attacks send about 20 packets/s, floods (even scans) over five times more
    assert mild_rate <= 25 and flood_rate > 5 * mild_rate


def test_knn_trained_on_benign_separates_attacks(nodes):
    # Prepare: time-ordered split of one device's benign rows
    node = nodes["Danmini_Doorbell"]
    cut = int(0.6 * len(node.benign))

    # Execute
    det = KNNDetector().fit(node.benign[:cut])
    benign, attack = det.decision_function(node.benign[cut:]), det.decision_function(node.attack)

    # Assert
    auroc = roc_auc_score(np.r_[np.zeros(len(benign)), np.ones(len(attack))], np.r_[benign, attack])
    assert auroc > 0.9


# -------------------------------------------------------------------- realism vs real rows


def _log(x: np.ndarray) -> np.ndarray:
    return np.log10(1.0 + np.abs(x))


def _families() -> dict[tuple[str, str], list[int]]:
    """Column indices by (stream, statistic), e.g. ("HH", "radius"), pooled over the 5 λ."""
    groups: dict = {}
    for j, c in enumerate(COLUMNS):
        stream = "HH_jit" if c.startswith("HH_jit") else c.split("_")[0]
        groups.setdefault((stream, c.rsplit("_", 1)[1]), []).append(j)
    return groups


# Tolerance, in decades of log10(1 + |x|), on the quartiles of each (stream, statistic) pooled
# over the five λ. Weights, means, magnitudes, correlations: one order of magnitude. Spreads are
# more device-specific: the real Danmini rows sit up to 1.27 decades (std) and 2.62 decades
# (radius) from the real nine-device pool, so a simulated pool may be as far as one real device
# is: 1.5 decades for a standard deviation, twice that for squared units (bytes², s²).
_TOLERANCE = {"std": 1.5, "variance": 3.0, "radius": 3.0, "covariance": 3.0}


def _real_benign() -> np.ndarray:
    parts = [pd.read_csv(p, header=None).to_numpy() for p in sorted((NBAIOT / "fedmse-iid").glob("*/normal/data.csv"))]
    return np.vstack(parts)


def test_benign_features_sit_in_the_real_orders_of_magnitude(nodes):
    # Prepare: all simulated benign rows vs the real fedmse-iid benign rows of tests/nbaiot (each client mixes all nine devices)
    sim = np.vstack([n.benign for n in nodes.values()])
    real = _real_benign()

    for (stream, stat), idx in _families().items():
        # Assert: quartiles of log10(1 + |x|) within the tolerance
        q_sim = np.quantile(_log(sim[:, idx]), [0.25, 0.5, 0.75])
        q_real = np.quantile(_log(real[:, idx]), [0.25, 0.5, 0.75])
        tol = _TOLERANCE.get(stat, 1.0)
        assert np.all(np.abs(q_sim - q_real) <= tol), (stream, stat, q_sim, q_real)


def test_size_means_and_weights_match_real_ranges(nodes):
    sim = np.vstack([n.benign for n in nodes.values()])
    real = _real_benign()
    means = [j for j, c in enumerate(COLUMNS) if c.endswith("_mean") and not c.startswith("HH_jit")]
    weights = [j for j, c in enumerate(COLUMNS) if c.endswith("_weight")]
    # Packet-size means are sizes: within 60-1,514 bytes, medians of both near 100 bytes
    assert sim[:, means].min() >= 60 - 1e-6 and sim[:, means].max() <= 1514 + 1e-6
    assert abs(np.log10(np.median(sim[:, means])) - np.log10(np.median(real[:, means]))) < 0.3
    # Weights: the 95th percentiles (busy moments) within a decade
    assert abs(np.log10(np.quantile(sim[:, weights], 0.95)) - np.log10(np.quantile(real[:, weights], 0.95))) < 1.0


def test_danmini_doorbell_matches_its_real_sample(nodes):
    # Prepare: the real first rows of Danmini's benign file, and the simulated Danmini
    real = pd.read_csv(NBAIOT / "uci-sample" / "Danmini_Doorbell" / "benign_traffic.csv").to_numpy()
    sim = nodes["Danmini_Doorbell"].benign
    cols = [COLUMNS.index(f"MI_dir_L{lam}_mean") for lam in ("5", "3", "1", "0.1", "0.01")]

    # Assert: the same typical packet size (real: 102-byte heartbeats) within 25%
    assert abs(np.median(sim[:, cols]) / np.median(real[:, cols]) - 1) < 0.25


def test_bad_scale_raises(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        simulate_network(tmp_path, scale=0)


def test_simulate_command_writes_the_layout(tmp_path):
    app = typer.Typer()
    app.command()(simulate_command)

    result = CliRunner().invoke(app, [str(tmp_path / "out"), "--seed", "2", "--scale", "0.02"])

    assert result.exit_code == 0, result.output
    assert "89 captures" in result.output
    assert len(read_dataset(tmp_path / "out", "uci")) == 9


@pytest.mark.parametrize("target, args, says", [
    ("data", [], "holds files of its own"),     # a data set is never written over
    ("a-file", [], "is a file"),
    ("new", ["--seed", "-1"], "seed ≥ 0"),
    ("new", ["--scale", "-1"], "scale > 0"),
    ("new", ["--scale", "inf"], "finite scale"),
])
def test_simulate_refuses_in_one_line_and_writes_nothing(tmp_path, target, args, says):
    from fedcl.cli import app as fedcl_app

    # Prepare: a folder holding someone's rows, and a file
    (tmp_path / "data" / "Doorbell").mkdir(parents=True)
    (tmp_path / "data" / "Doorbell" / "benign_traffic.csv").write_text("real rows\n")
    (tmp_path / "a-file").write_text("x\n")

    result = CliRunner().invoke(fedcl_app, ["data", "simulate", str(tmp_path / target), "--scale", "0.02", *args])

    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "data" / "Doorbell" / "benign_traffic.csv").read_text() == "real rows\n"
    assert not (tmp_path / "new").exists() and (tmp_path / "a-file").read_text() == "x\n"


def test_simulate_writes_again_over_an_earlier_simulation_and_an_interrupted_one_leaves_nothing(tmp_path, monkeypatch):
    from fedcl.cli import app as fedcl_app
    from fedcl.traffic import _simulate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the captures are written

    for _ in range(2):
        result = CliRunner().invoke(fedcl_app, ["data", "simulate", str(tmp_path / "sim"), "--scale", "0.02"])
        assert result.exit_code == 0, result.output
    with monkeypatch.context() as patch:
        patch.setattr(_simulate, "_write_csv", interrupted)
        cut = CliRunner().invoke(fedcl_app, ["data", "simulate", str(tmp_path / "cut"), "--scale", "0.02"])
    assert cut.exit_code != 0 and not (tmp_path / "cut").exists()
    again = CliRunner().invoke(fedcl_app, ["data", "simulate", str(tmp_path / "cut"), "--scale", "0.02"])

    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "sim"]  # no half data set, no temporary folder
    assert again.exit_code == 0, again.output
