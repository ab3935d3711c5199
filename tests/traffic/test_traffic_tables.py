"""FeatureWriter: CSV with today's header and exact values, Parquet with the same values, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fedcl.data import COLUMNS, DataError, read_feature_csv
from fedcl.traffic import FeatureWriter
from fedcl.traffic import _tables


def _awkward_rows(n: int = 500, seed: int = 0) -> np.ndarray:
    """Values whose shortest decimal spelling is long or unusual: 17 digits, subnormals, -0, NaN."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, len(COLUMNS))) * 10.0 ** rng.integers(-300, 300, (n, len(COLUMNS)))
    rows[0, :8] = [0.1 + 0.2, 5e-324, -0.0, 1.5e9 + 1 / 3, 1e16, 123456789012345678.0, 1.0, np.nan]
    rows[1] = 0.0
    return rows


def _write(path, chunks) -> None:
    with FeatureWriter(path) as out:
        for chunk in chunks:
            out.write(chunk)


def test_csv_header_is_todays_and_values_round_trip_exactly(tmp_path):
    # Prepare
    rows = _awkward_rows()

    # Execute
    _write(tmp_path / "f.csv", [rows[:7], rows[7:300], rows[300:]])

    # Assert: the header byte for byte as before (unquoted, as N-BaIoT's); every float64 comes back
    # bit for bit through fedcl's reader and through pandas
    with open(tmp_path / "f.csv", "rb") as f:
        assert f.readline() == (",".join(COLUMNS) + "\n").encode()
    np.testing.assert_array_equal(read_feature_csv(tmp_path / "f.csv"), rows)
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "f.csv").to_numpy(), rows)
    assert np.signbit(read_feature_csv(tmp_path / "f.csv")[0, 2])  # -0.0 stays -0.0


def test_parquet_holds_the_same_values_as_the_csv(tmp_path, monkeypatch):
    # Prepare: 9 chunks of ~56 rows, written 3 at a time (≥ 128 rows): 3 row groups
    monkeypatch.setattr(_tables, "_ROWS_PER_WRITE", 128)
    rows = _awkward_rows()

    # Execute
    for name in ("f.csv", "f.parquet"):
        _write(tmp_path / name, np.array_split(rows, 9))

    # Assert
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.column_names == list(COLUMNS) and pq.ParquetFile(tmp_path / "f.parquet").num_row_groups == 3
    np.testing.assert_array_equal(table.to_pandas().to_numpy(), rows)
    np.testing.assert_array_equal(read_feature_csv(tmp_path / "f.parquet"), read_feature_csv(tmp_path / "f.csv"))


@pytest.mark.parametrize("name", ["f.csv", "f.parquet"])
def test_no_rows_still_writes_the_columns(tmp_path, name):
    _write(tmp_path / name, [])

    if name.endswith(".parquet"):
        assert pq.read_table(tmp_path / name).column_names == list(COLUMNS)
    else:
        assert (tmp_path / name).read_text() == ",".join(COLUMNS) + "\n"


def test_rows_of_the_wrong_shape_raise(tmp_path):
    with FeatureWriter(tmp_path / "f.parquet") as out, pytest.raises(ValueError, match=r"shape \(n, 115\)"):
        out.write(np.zeros((3, 114)))


def test_parquet_reader_names_the_bad_column(tmp_path):
    # Prepare: a table with one column missing
    _write(tmp_path / "f.parquet", [_awkward_rows(5)])
    table = pq.read_table(tmp_path / "f.parquet").drop_columns([COLUMNS[3]])
    pq.write_table(table, tmp_path / "g.parquet")

    # Execute / Assert: one line, naming the file and the column found where another is expected
    with pytest.raises(DataError, match=r"g\.parquet: .*column 4 is 'MI_dir_L3_mean', expected 'MI_dir_L3_weight'"):
        read_feature_csv(tmp_path / "g.parquet")


def test_a_file_of_the_client_layout_reads_without_a_header_and_a_bad_header_still_fails(tmp_path):
    # Prepare: fedmse-iid's client files have no header row; the same rows with one
    rows = _awkward_rows()
    _write(tmp_path / "f.csv", [rows])
    lines = (tmp_path / "f.csv").read_text().splitlines(keepends=True)
    (tmp_path / "headerless.csv").write_text("".join(lines[1:]))
    (tmp_path / "first-missing.csv").write_text("nan" + lines[1][lines[1].index(","):])
    (tmp_path / "misnamed.csv").write_text("packets," + lines[0].split(",", 1)[1] + "".join(lines[1:]))

    # Execute / Assert
    np.testing.assert_array_equal(read_feature_csv(tmp_path / "headerless.csv"), rows)
    assert np.isnan(read_feature_csv(tmp_path / "first-missing.csv")[0, 0])
    with pytest.raises(DataError, match="header names 'packets'"):
        read_feature_csv(tmp_path / "misnamed.csv")
