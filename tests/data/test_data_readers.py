"""Tests for fedcl.data readers: layouts, detection, and every malformed input."""


import numpy as np
import pytest

from fedcl.data import (
    COLUMNS,
    KAGGLE_DEVICES,
    N_FEATURES,
    DataError,
    detect_layout,
    node_names,
    read_dataset,
)

from conftest import NBAIOT as REAL


def make_rows(n, seed=0):
    """n x 115 table of cell strings holding random non-negative floats."""
    values = np.random.default_rng(seed).uniform(0, 1000, (n, N_FEATURES)).round(4)
    return [[repr(float(v)) for v in row] for row in values]


def write_csv(path, rows, header=True):
    """Write rows (lists of cell strings) with an optional N-BaIoT header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([",".join(COLUMNS)] if header else []) + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def as_array(rows):
    return np.array([[float(c) for c in r] for r in rows])


# ------------------------------------------------------------------ layouts


def test_clients_layout_reads_each_folder_sorted_naturally(tmp_path):
    # Prepare: Client-10 is complete, Client-2 has neither test_normal nor abnormal.
    rows = {name: make_rows(5, seed=i) for i, name in enumerate(["n10", "t10", "a10", "n2"])}
    write_csv(tmp_path / "Client-10/normal/data.csv", rows["n10"], header=False)
    write_csv(tmp_path / "Client-10/test_normal/data.csv", rows["t10"], header=False)
    write_csv(tmp_path / "Client-10/abnormal/data.csv", rows["a10"], header=False)
    write_csv(tmp_path / "Client-2/normal/data.csv", rows["n2"], header=False)

    # Execute
    nodes = read_dataset(tmp_path)

    # Assert
    assert [n.name for n in nodes] == ["Client-2", "Client-10"]
    two, ten = nodes
    np.testing.assert_array_equal(ten.benign, as_array(rows["n10"]))
    np.testing.assert_array_equal(ten.benign_test, as_array(rows["t10"]))
    np.testing.assert_array_equal(ten.attack, as_array(rows["a10"]))
    assert list(ten.attack_family) == ["attack"] * 5
    assert two.benign_test is None
    assert two.attack.shape == (0, N_FEATURES) and two.attack_family.shape == (0,)
    assert not two.ordered and two.benign.dtype == np.float64


def test_uci_layout_reads_families_in_file_order(tmp_path):
    # Prepare
    dev = tmp_path / "Danmini_Doorbell"
    benign, scan, udp = make_rows(6, 1), make_rows(3, 2), make_rows(2, 3)
    write_csv(dev / "benign_traffic.csv", benign)
    write_csv(dev / "gafgyt_attacks/scan.csv", scan)
    write_csv(dev / "mirai_attacks/udp.csv", udp)

    # Execute
    (node,) = read_dataset(tmp_path)
    (single,) = read_dataset(dev)  # a single device folder is accepted too

    # Assert
    assert node.name == single.name == "Danmini_Doorbell"
    assert node.ordered and node.benign_test is None
    np.testing.assert_array_equal(node.benign, as_array(benign))
    np.testing.assert_array_equal(node.attack, as_array(scan + udp))
    assert list(node.attack_family) == ["gafgyt.scan"] * 3 + ["mirai.udp"] * 2
    np.testing.assert_array_equal(single.attack, node.attack)


def test_kaggle_layout_maps_numbers_to_devices(tmp_path):
    # Prepare: extra metadata files of the Kaggle set must be ignored.
    write_csv(tmp_path / "2.benign.csv", make_rows(4, 1))
    write_csv(tmp_path / "1.benign.csv", make_rows(3, 2))
    write_csv(tmp_path / "1.mirai.ack.csv", make_rows(2, 3))
    write_csv(tmp_path / "1.gafgyt.combo.csv", make_rows(1, 4))
    (tmp_path / "device_info.csv").write_text("whatever\n")

    # Execute
    nodes = read_dataset(tmp_path)

    # Assert
    assert [n.name for n in nodes] == [KAGGLE_DEVICES[0], KAGGLE_DEVICES[1]]
    assert nodes[0].name == "Danmini_Doorbell" and nodes[1].name == "Ecobee_Thermostat"
    assert nodes[0].benign.shape == (3, N_FEATURES)
    assert list(nodes[0].attack_family) == ["gafgyt.combo", "mirai.ack", "mirai.ack"]
    assert nodes[1].attack.shape == (0, N_FEATURES) and nodes[1].ordered


def test_detect_layout_and_override(tmp_path):
    # Prepare
    write_csv(tmp_path / "uci/Dev/benign_traffic.csv", make_rows(2))
    write_csv(tmp_path / "kaggle/3.benign.csv", make_rows(2))
    write_csv(tmp_path / "clients/Client-1/normal/data.csv", make_rows(2), header=False)
    (tmp_path / "nothing").mkdir()

    # Execute / Assert
    assert detect_layout(tmp_path / "uci") == "uci"
    assert detect_layout(tmp_path / "uci/Dev") == "uci"
    assert detect_layout(tmp_path / "kaggle") == "kaggle"
    assert detect_layout(tmp_path / "clients") == "clients"
    assert read_dataset(tmp_path / "clients", layout="clients")[0].name == "Client-1"
    # the names read_dataset gives, from folders and file names alone
    write_csv(tmp_path / "uci/Cam/benign_traffic.csv", make_rows(2))
    write_csv(tmp_path / "kaggle/1.benign.csv", make_rows(2))
    for folder in ("uci", "uci/Dev", "kaggle", "clients"):
        assert node_names(tmp_path / folder) == [n.name for n in read_dataset(tmp_path / folder)]
    assert node_names(tmp_path / "kaggle") == [KAGGLE_DEVICES[0], KAGGLE_DEVICES[2]]
    with pytest.raises(DataError, match="unknown layout 'bogus'"):
        node_names(tmp_path / "uci", layout="bogus")
    with pytest.raises(DataError, match="no client folders"):
        node_names(tmp_path / "uci", layout="clients")
    write_csv(tmp_path / "kaggle/10.benign.csv", make_rows(2))
    for unread in (node_names, read_dataset):
        with pytest.raises(DataError, match="unknown device number 10"):
            unread(tmp_path / "kaggle")
    with pytest.raises(DataError, match="no known layout"):
        detect_layout(tmp_path / "nothing")
    with pytest.raises(DataError, match="no client folders"):
        read_dataset(tmp_path / "uci", layout="clients")
    with pytest.raises(DataError, match="unknown layout 'parquet'"):
        read_dataset(tmp_path / "uci", layout="parquet")
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "missing")


def test_missing_values_are_nan_not_errors(tmp_path):
    # Prepare
    rows = make_rows(3)
    rows[0][0], rows[1][5], rows[2][114] = "", "nan", "NaN"
    write_csv(tmp_path / "Client-1/normal/data.csv", rows, header=False)

    # Execute
    (node,) = read_dataset(tmp_path)

    # Assert
    nan = np.isnan(node.benign)
    assert nan.sum() == 3 and nan[0, 0] and nan[1, 5] and nan[2, 114]


# ------------------------------------------------------------------ bad input


def _set(r, c, text):
    """Mutation: put text in data row r, column c."""

    def mutate(rows):
        rows[r][c] = text

    return mutate


def _truncate(r):
    def mutate(rows):
        del rows[r][-1]

    return mutate


def _extend(r):
    def mutate(rows):
        rows[r].append("1.0")

    return mutate


def _blank(r):
    def mutate(rows):
        rows[r] = []

    return mutate


HH_L5_MEAN = COLUMNS.index("HH_L5_mean")

# (mutation, data row it hits, column named in the message)
BAD_CELLS = {
    "text": (_set(15, HH_L5_MEAN, "abc"), 15, "HH_L5_mean"),
    "NA is text": (_set(3, 0, "NA"), 3, COLUMNS[0]),
    "inf": (_set(7, 2, "inf"), 7, COLUMNS[2]),
    "-inf": (_set(0, 114, "-inf"), 0, COLUMNS[114]),
    "Infinity": (_set(9, 40, "Infinity"), 9, COLUMNS[40]),
    "overflow": (_set(4, 70, "1e999"), 4, COLUMNS[70]),
    "truncated": (_truncate(12), 12, COLUMNS[114]),
    "extra field": (_extend(6), 6, "116"),
    "blank line": (_blank(5), 5, None),
}


@pytest.mark.parametrize("header", [True, False], ids=["headered", "headerless"])
@pytest.mark.parametrize("case", list(BAD_CELLS))
def test_bad_cell_names_file_line_and_column(tmp_path, case, header):
    # Prepare: a later, different error must not be reported instead.
    mutate, row, column = BAD_CELLS[case]
    rows = make_rows(20)
    mutate(rows)
    rows[18][3] = "later-error"
    name = "1.benign.csv" if header else "Client-1/normal/data.csv"
    path = write_csv(tmp_path / name, rows, header=header)

    # Execute
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path)

    # Assert: editor line numbers, header = line 1.
    line = row + 1 + int(header)
    message = str(info.value)
    assert str(path) in message
    assert f", line {line}" in message and info.value.line == line
    if column is not None:
        assert f"column {column}:" in message
    assert "\n" not in message


def test_text_message_format(tmp_path):
    # Prepare
    rows = make_rows(20)
    rows[15][HH_L5_MEAN] = "abc"
    path = write_csv(tmp_path / "1.benign.csv", rows)

    # Execute
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path)

    # Assert
    assert str(info.value) == f"{path}, line 17, column HH_L5_mean: text 'abc' in a numeric column"


def test_wrong_header_name_is_line_one(tmp_path):
    # Prepare
    names = list(COLUMNS)
    names[31] = "HH_L5_mea"
    path = tmp_path / "Dev/benign_traffic.csv"
    path.parent.mkdir()
    path.write_text(",".join(names) + "\n" + ",".join(make_rows(1)[0]) + "\n")

    # Execute
    with pytest.raises(DataError) as info:
        read_dataset(tmp_path)

    # Assert
    assert str(info.value).startswith(f"{path}, line 1, column HH_L5_mean: ")
    assert "'HH_L5_mea'" in str(info.value)


def test_headerless_file_in_headered_layout_is_explained(tmp_path):
    path = write_csv(tmp_path / "Dev/benign_traffic.csv", make_rows(3), header=False)

    with pytest.raises(DataError, match="no header row") as info:
        read_dataset(tmp_path)

    assert str(path) in str(info.value) and info.value.line == 1


def test_short_header_is_reported(tmp_path):
    path = tmp_path / "1.benign.csv"
    path.write_text(",".join(COLUMNS[:-1]) + "\n")

    with pytest.raises(DataError, match="header has 114 columns") as info:
        read_dataset(tmp_path)

    assert info.value.column == COLUMNS[-1] and str(path) in str(info.value)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("1.benign.csv", "", "empty file"),
        ("Client-1/normal/data.csv", "", "empty file"),
        ("1.benign.csv", ",".join(COLUMNS) + "\n", "no rows"),
        ("1.benign.csv", ",".join(COLUMNS) + "\n\n\n", "no rows"),
    ],
    ids=["kaggle-0-bytes", "clients-0-bytes", "header-only", "header-and-blank-lines"],
)
def test_empty_files(tmp_path, name, content, reason):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)

    with pytest.raises(DataError, match=reason) as info:
        read_dataset(tmp_path)

    assert str(info.value).startswith(str(path))


def test_trailing_blank_lines_and_crlf_are_accepted(tmp_path):
    rows = make_rows(2)
    path = tmp_path / "Client-1/normal/data.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(("\r\n".join(",".join(r) for r in rows) + "\r\n\r\n").encode())

    (node,) = read_dataset(tmp_path)

    np.testing.assert_array_equal(node.benign, as_array(rows))


@pytest.mark.parametrize("layout", ["uci", "kaggle", "clients"])
def test_node_without_benign_rows(tmp_path, layout):
    # Prepare: attack rows only.
    if layout == "uci":
        write_csv(tmp_path / "Ecobee_Thermostat/mirai_attacks/udp.csv", make_rows(2))
        where = "Ecobee_Thermostat"
    elif layout == "kaggle":
        write_csv(tmp_path / "2.mirai.udp.csv", make_rows(2))
        where = "Ecobee_Thermostat"
    else:
        write_csv(tmp_path / "Client-3/abnormal/data.csv", make_rows(2), header=False)
        where = "Client-3"

    # Execute / Assert
    with pytest.raises(DataError, match="no benign rows") as info:
        read_dataset(tmp_path)
    assert where in str(info.value)


def test_path_is_a_file(tmp_path):
    path = write_csv(tmp_path / "1.benign.csv", make_rows(1))
    with pytest.raises(DataError, match="not a folder"):
        read_dataset(path)


# ------------------------------------------------------------------ real data


def test_real_fedmse_iid():
    nodes = read_dataset(REAL / "fedmse-iid")

    assert [n.name for n in nodes] == ["Client-1", "Client-2", "Client-3"]
    assert [(len(n.benign), len(n.benign_test), len(n.attack)) for n in nodes] == [(400, 100, 200)] * 3
    assert all(not n.ordered and n.benign.shape[1] == N_FEATURES for n in nodes)


def test_real_uci_sample():
    assert detect_layout(REAL / "uci-sample") == "uci"

    (danmini,) = read_dataset(REAL / "uci-sample/Danmini_Doorbell")
    assert danmini.name == "Danmini_Doorbell" and danmini.ordered
    assert danmini.benign.shape == (800, N_FEATURES)
    assert danmini.attack.shape == (400, N_FEATURES)
    assert set(danmini.attack_family) == {"gafgyt.scan", "gafgyt.udp"}

    # The sample holds only a mirai/udp.csv for the thermostat, no benign file.
    with pytest.raises(DataError, match="Ecobee_Thermostat: no benign rows"):
        read_dataset(REAL / "uci-sample")
