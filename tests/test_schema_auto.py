"""`--schema auto`: any numeric feature table (here a generated CICFlowMeter-like one) through the readers and the
`fedcl` commands.

Run as a script to write the sample: ``python tests/test_schema_auto.py OUT_DIR [uci|clients]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fedcl.cli import app
from fedcl.data import DataError, read_dataset, read_feature_csv

runner = CliRunner()

# A CICFlowMeter-like header: five text columns (identifiers, time, label) around fifteen numeric ones.
TEXT = ("Flow ID", "Src IP", "Dst IP", "Timestamp", "Label")
NUMERIC = ("Src Port", "Dst Port", "Protocol", "Flow Duration", "Tot Fwd Pkts", "Tot Bwd Pkts", "TotLen Fwd Pkts",
           "TotLen Bwd Pkts", "Fwd Pkt Len Mean", "Bwd Pkt Len Mean", "Flow Byts/s", "Flow Pkts/s", "Flow IAT Mean",
           "Flow IAT Std", "SYN Flag Cnt")
HEADER = ("Flow ID", "Src IP", "Src Port", "Dst IP", *NUMERIC[1:3], "Timestamp", *NUMERIC[3:], "Label")
NODES = ("cam-1", "cam-2", "plug-3")


def _flows(rng: np.random.Generator, n: int, kind: str, node: int) -> list[list[str]]:
    """``n`` CSV rows of one kind of traffic: benign (a few packets each way), ddos (SYN floods), scan (1-2 packets)."""
    src, dst = f"192.168.1.{10 + node}", "10.0.0.1"
    if kind == "benign":
        fwd, bwd = rng.integers(2, 12, n), rng.integers(1, 10, n)
        fwd_len, bwd_len = rng.normal(300, 60, n).clip(40), rng.normal(900, 200, n).clip(40)
        duration, dport, syn = rng.lognormal(11, 1, n), rng.choice([443, 8883, 53], n), np.ones(n)
    elif kind == "ddos":
        fwd, bwd = rng.integers(80, 200, n), np.zeros(n, int)
        fwd_len, bwd_len = np.full(n, 60.0), np.zeros(n)
        duration, dport, syn = rng.lognormal(8, 0.5, n), np.full(n, 80), fwd.astype(float)
    else:  # scan
        fwd, bwd = rng.integers(1, 3, n), rng.integers(0, 2, n)
        fwd_len, bwd_len = np.full(n, 44.0), np.where(bwd > 0, 40.0, 0.0)
        duration, dport, syn = rng.lognormal(5, 0.5, n), rng.integers(1, 1024, n), np.ones(n)
    rows = []
    for i in range(n):
        packets = fwd[i] + bwd[i]
        seconds = duration[i] / 1e6
        iat_std = "" if packets < 3 else f"{rng.exponential(duration[i] / packets):.1f}"  # CICFlowMeter: no spread
        sport = int(rng.integers(1024, 65535))
        numeric = [sport, int(dport[i]), 6, round(duration[i]), int(fwd[i]), int(bwd[i]),
                   round(fwd[i] * fwd_len[i]), round(bwd[i] * bwd_len[i]), round(fwd_len[i], 1), round(bwd_len[i], 1),
                   round((fwd[i] * fwd_len[i] + bwd[i] * bwd_len[i]) / seconds, 2), round(packets / seconds, 2),
                   round(duration[i] / packets, 1), iat_std, int(syn[i])]
        cells = dict(zip(NUMERIC, map(str, numeric), strict=True))
        cells.update({"Flow ID": f"{src}-{dst}-{sport}-{int(dport[i])}-6", "Src IP": src, "Dst IP": dst,
                      "Timestamp": f"30/11/2026 10:{i // 60 % 60:02d}:{i % 60:02d}",
                      "Label": "BENIGN" if kind == "benign" else kind.upper()})
        rows.append([cells[c] for c in HEADER])
    return rows


def _write(path: Path, rows: list[list[str]], header=HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(r) for r in [list(header), *rows]) + "\n")


def write_flow_tables(root: Path, layout: str = "uci", n_benign: int = 150, n_attack: int = 40, seed: int = 0) -> Path:
    """Three nodes of CICFlowMeter-like flows, benign and two attack families each, in a layout fedcl reads.

    ``uci``: ``<node>/benign_traffic.csv``, ``<node>/mirai_attacks/ddos.csv``, ``<node>/gafgyt_attacks/scan.csv``;
    ``clients``: ``<node>/normal/data.csv`` and ``<node>/abnormal/data.csv`` (with a header row: schema auto).
    """
    rng = np.random.default_rng(seed)
    for k, node in enumerate(NODES):
        benign = _flows(rng, n_benign, "benign", k)
        ddos, scan = _flows(rng, n_attack, "ddos", k), _flows(rng, n_attack, "scan", k)
        if layout == "uci":
            _write(root / node / "benign_traffic.csv", benign)
            _write(root / node / "mirai_attacks" / "ddos.csv", ddos)
            _write(root / node / "gafgyt_attacks" / "scan.csv", scan)
        else:
            _write(root / node / "normal" / "data.csv", benign)
            _write(root / node / "abnormal" / "data.csv", ddos + scan)
    return root


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> Path:
    return write_flow_tables(tmp_path_factory.mktemp("flows"))


def _one_line_error(result) -> str:
    """The single line a command printed on bad input (exit code 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# --------------------------------------------------------------------------- readers


@pytest.mark.parametrize("layout", ["uci", "clients"])
def test_auto_keeps_the_numeric_columns_in_every_layout(tmp_path, layout):
    # Prepare
    write_flow_tables(tmp_path, layout, n_benign=20, n_attack=5)

    # Execute
    nodes = read_dataset(tmp_path, schema="auto")

    # Assert
    assert [n.name for n in nodes] == list(NODES)
    for node in nodes:
        assert node.columns == tuple(c for c in HEADER if c in NUMERIC)
        assert node.dropped_columns == TEXT
        assert node.benign.shape == (20, len(NUMERIC)) and node.attack.shape == (10, len(NUMERIC))
    iat_std = nodes[0].columns.index("Flow IAT Std")
    assert np.isnan(nodes[0].attack[:, iat_std]).any()  # empty cells are missing values, as in N-BaIoT
    if layout == "uci":
        assert set(nodes[0].attack_family) == {"mirai.ddos", "gafgyt.scan"}


@pytest.mark.parametrize("layout", ["uci", "clients"])
def test_nbaiot_schema_rejects_a_flow_table_with_a_hint(tmp_path, layout):
    write_flow_tables(tmp_path, layout, n_benign=5, n_attack=2)
    with pytest.raises(DataError, match="--schema auto"):
        read_dataset(tmp_path)


def _with_cell(lines: list[str], line: int, column: str, value: str) -> list[str]:
    """``lines`` of a flow table with one cell replaced (``line`` 0-based, the header being 0)."""
    cells = lines[line].split(",")
    cells[HEADER.index(column)] = value
    return [*lines[:line], ",".join(cells), *lines[line + 1:]]


def test_auto_validates_numeric_cells_like_nbaiot(tmp_path):
    # Prepare: text on line 4 and an infinite rate on line 3 of numeric columns (CIC-IDS2017 writes "Infinity")
    write_flow_tables(tmp_path, n_benign=5, n_attack=2)
    benign = tmp_path / "cam-2" / "benign_traffic.csv"
    lines = benign.read_text().splitlines()
    text_lines = _with_cell(lines, 3, "Flow Duration", "abc")
    inf_lines = _with_cell(lines, 2, "Flow Byts/s", "Infinity")

    # Execute / Assert
    benign.write_text("\n".join(text_lines) + "\n")
    with pytest.raises(DataError, match="line 4, column Flow Duration: text 'abc' in a numeric column"):
        read_dataset(tmp_path, schema="auto")
    benign.write_text("\n".join(inf_lines) + "\n")
    with pytest.raises(DataError, match="line 3, column Flow Byts/s: non-finite value 'Infinity'"):
        read_dataset(tmp_path, schema="auto")


def test_a_quoted_comma_is_named_in_the_error(tmp_path):
    # Prepare: a text column whose value holds a comma inside quotes (a user agent, a URI)
    write_flow_tables(tmp_path, n_benign=5, n_attack=2)
    benign = tmp_path / "cam-2" / "benign_traffic.csv"
    lines = _with_cell(benign.read_text().splitlines(), 2, "Label", '"Mozilla/5.0 (X11, Linux)"')
    benign.write_text("\n".join(lines) + "\n")

    # Execute / Assert
    with pytest.raises(DataError, match="line 3.*a quoted field holding a comma is not supported"):
        read_dataset(tmp_path, schema="auto")


def test_auto_needs_one_header_across_nodes(tmp_path):
    # Prepare: one node's benign file has a renamed column
    write_flow_tables(tmp_path, n_benign=5, n_attack=2)
    other = tmp_path / "plug-3" / "benign_traffic.csv"
    other.write_text(other.read_text().replace("Flow Pkts/s", "Flow Packets/s", 1))

    # Execute / Assert
    with pytest.raises(DataError, match=r"plug-3.*column 16 is 'Flow Packets/s', but .*cam-1.* has 'Flow Pkts/s'"):
        read_dataset(tmp_path, schema="auto")


def test_auto_refuses_a_table_without_numeric_columns(tmp_path):
    _write(tmp_path / "n1" / "benign_traffic.csv", [["a", "b"], ["c", "-"]], header=("proto", "service"))
    with pytest.raises(DataError, match="no numeric column"):
        read_dataset(tmp_path, schema="auto")


def test_zeek_dash_is_missing_and_a_dashed_only_column_is_dropped(tmp_path):
    # Prepare: Zeek conn.log fields as CSV; "-" is Zeek's unset field
    rows = [["C1", "0.5", "-", "-"], ["C2", "-", "120", "-"], ["C3", "1.5", "80", "-"]]
    _write(tmp_path / "n1" / "benign_traffic.csv", rows, header=("uid", "duration", "orig_bytes", "tunnel_parents"))

    # Execute
    (node,) = read_dataset(tmp_path, schema="auto")

    # Assert
    assert node.columns == ("duration", "orig_bytes") and node.dropped_columns == ("uid", "tunnel_parents")
    np.testing.assert_array_equal(np.isnan(node.benign), [[False, True], [True, False], [False, False]])


def test_read_feature_csv_picks_columns_by_name(tmp_path):
    # Prepare
    _write(tmp_path / "f.csv", [["x", "1", "2"], ["y", "3", ""]], header=("id", "b", "a"))

    # Execute
    rows = read_feature_csv(tmp_path / "f.csv", columns=("a", "b"))

    # Assert
    np.testing.assert_array_equal(rows, [[2.0, 1.0], [np.nan, 3.0]])
    with pytest.raises(DataError, match="no column 'c' in the header"):
        read_feature_csv(tmp_path / "f.csv", columns=("a", "c"))


# --------------------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def flow_run(flows, tmp_path_factory, one_torch_thread):
    """`fedcl run --schema auto` with a tiny model: (result, run directory)."""
    out = tmp_path_factory.mktemp("flow-run") / "run"
    toml = out.parent / "tiny.toml"
    toml.write_text("hidden = 16\nembedding_dim = 8\nbatch_size = 32\nn_references = 16\nn_neighbors = 3\n"
                    'personalisation = "off"\n')
    result = runner.invoke(app, ["run", "--data", str(flows), "--schema", "auto", "--rounds", "1",
                                 "--config", str(toml), "--out", str(out)])
    return result, out


def test_run_evaluate_detect_on_a_flow_table(flow_run, flows, tmp_path):
    # Prepare
    result, run = flow_run
    used = [c for c in HEADER if c in NUMERIC]

    # Execute
    evaluated = runner.invoke(app, ["evaluate", "--out", str(run), "--schema", "auto"])
    detected = runner.invoke(app, ["detect", str(flows / "cam-1" / "mirai_attacks" / "ddos.csv"), "--model", str(run),
                                   "--node", "cam-1", "--schema", "auto", "--out", str(tmp_path / "alerts.csv")])

    # Assert
    assert result.exit_code == 0, result.output
    assert f"schema auto: {len(used)} numeric columns used: {', '.join(used)}; 5 dropped" in result.output
    saved = torch.load(run / "model.pt", weights_only=True)
    assert saved["columns"] == used and saved["n_features"] == len(used)
    config = (run / "config.toml").read_text()
    assert 'schema = "auto"' in config and 'leakage_guard = "off"' in config
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["counts"] == {"benign_test": 3 * 30, "attack": 3 * 80}
    assert set(metrics["families"]) == {"mirai.ddos", "gafgyt.scan"}
    assert metrics["pooled"]["auroc"] > 0.6  # the generated attacks differ plainly from benign flows
    assert detected.exit_code == 0, detected.output
    assert len((tmp_path / "alerts.csv").read_text().splitlines()) == 40 + 1


def test_live_capture_refuses_a_feature_table_model(flow_run, tmp_path):
    # Execute: loopback exists; the refusal comes before any capture or output
    _, run = flow_run
    live = runner.invoke(app, ["detect", "--interface", "lo", "--model", str(run), "--node", "cam-1",
                               "--out", str(tmp_path / "o.csv")])

    # Assert
    assert live.exit_code == 2
    assert "live capture gives N-BaIoT's 115 features, but the model reads" in _one_line_error(live)
    assert not (tmp_path / "o.csv").exists()


def test_a_run_refuses_other_columns(flow_run, flows, tmp_path):
    # Prepare: the same table without one numeric column, and a capture (N-BaIoT features)
    _, run = flow_run
    fewer = tmp_path / "fewer"
    for f in flows.rglob("*.csv"):
        lines = [line.split(",") for line in f.read_text().splitlines()]
        drop = HEADER.index("SYN Flag Cnt")
        _write(fewer / f.relative_to(flows), [r[:drop] + r[drop + 1:] for r in lines[1:]],
               header=[c for c in HEADER if c != "SYN Flag Cnt"])
    capture = tmp_path / "x.pcap"
    capture.write_bytes(b"")

    # Execute
    evaluated = runner.invoke(app, ["evaluate", "--out", str(run), "--data", str(fewer)])
    detected = runner.invoke(app, ["detect", str(fewer / "cam-1" / "benign_traffic.csv"), "--model", str(run),
                                   "--node", "cam-1", "--out", str(tmp_path / "a.csv")])
    from_capture = runner.invoke(app, ["detect", str(capture), "--model", str(run), "--node", "cam-1"])
    wrong_schema = runner.invoke(app, ["evaluate", "--out", str(run), "--schema", "nbaiot"])
    exported = runner.invoke(app, ["export", "--model", str(run), "--node", "cam-1", "--out", str(tmp_path / "b")])

    # Assert
    assert "the data lacks SYN Flag Cnt" in _one_line_error(evaluated)
    assert "no column 'SYN Flag Cnt' in the header" in _one_line_error(detected)
    assert "a capture gives N-BaIoT's 115 features" in _one_line_error(from_capture)
    assert "trained with --schema auto, not nbaiot" in _one_line_error(wrong_schema)
    assert "bundles hold N-BaIoT models only" in _one_line_error(exported)


def test_bad_tables_are_one_line_errors(flows, tmp_path):
    # Prepare: a text-only table, and nodes whose headers differ
    _write(tmp_path / "text" / "n1" / "benign_traffic.csv", [["a", "b"]] * 4, header=("proto", "service"))
    mixed = tmp_path / "mixed"
    write_flow_tables(mixed, n_benign=5, n_attack=2)
    renamed = mixed / "cam-2" / "mirai_attacks" / "ddos.csv"
    renamed.write_text(renamed.read_text().replace("Label", "label", 1))

    def train(*args):
        return runner.invoke(app, ["train", *args, "--out", str(tmp_path / "r")])

    # Execute / Assert
    assert "no numeric column" in _one_line_error(train("--data", str(tmp_path / "text"), "--schema", "auto"))
    assert "every file of a data set needs the same header" in _one_line_error(
        train("--data", str(mixed), "--schema", "auto"))
    assert "--schema auto reads the numeric columns" in _one_line_error(train("--data", str(flows)))
    assert "leakage_guard off" in _one_line_error(
        train("--data", str(flows), "--schema", "auto", "--leakage-guard", "strict"))
    assert "schema must be one of" in _one_line_error(train("--data", str(flows), "--schema", "cic"))
    assert "supervised rows" in _one_line_error(
        runner.invoke(app, ["experiment", "compare", "--data", str(flows), "--schema", "auto"]))


if __name__ == "__main__":
    print(write_flow_tables(Path(sys.argv[1]), *sys.argv[2:3]))
