"""features_command: capture → CSV end to end, partial rows on damage, nothing for a non-capture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fedcl.cli.errors import bad_input_exits_2
from fedcl.cli.traffic import features_command
from fedcl.data import COLUMNS, DataError, read_feature_csv
from fedcl.traffic import extract_features, write_synthetic_capture


def test_capture_to_csv_end_to_end(tmp_path):
    # Prepare
    write_synthetic_capture(tmp_path / "c.pcap", 300, seed=4)

    # Execute
    features_command(tmp_path / "c.pcap", tmp_path / "out" / "f.csv")

    # Assert: the header is columns.txt, values round-trip exactly
    df = pd.read_csv(tmp_path / "out" / "f.csv")
    assert tuple(df.columns) == COLUMNS and len(df) == 300
    np.testing.assert_array_equal(df.to_numpy(), extract_features(tmp_path / "c.pcap").to_numpy())


def test_truncated_capture_keeps_rows_read_and_raises(tmp_path):
    # Prepare
    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 120, seed=4)
    whole = extract_features(capture).to_numpy()
    capture.write_bytes(capture.read_bytes()[:-25])

    # Execute
    with pytest.raises(DataError) as err:
        features_command(capture, tmp_path / "f.csv")

    # Assert
    assert "read 119 packets" in str(err.value) and "\n" not in str(err.value)
    df = pd.read_csv(tmp_path / "f.csv")
    assert len(df) == 119
    np.testing.assert_array_equal(df.to_numpy(), whole[:119])


def test_non_capture_raises_and_writes_nothing(tmp_path):
    (tmp_path / "x.pcap").write_text("hello\n")

    with pytest.raises(DataError, match="read 0 packets"):
        features_command(tmp_path / "x.pcap", tmp_path / "f.csv")

    assert not (tmp_path / "f.csv").exists()


def test_runs_as_a_typer_command_with_the_epoch_flag(tmp_path):
    # Prepare: registered the way cli.py will
    app = typer.Typer()
    app.command("features")(features_command)
    app.command("other")(lambda: None)
    write_synthetic_capture(tmp_path / "c.pcap", 50, seed=4)

    # Execute
    result = CliRunner().invoke(app, ["features", str(tmp_path / "c.pcap"), str(tmp_path / "f.csv"),
                                      "--first-jitter-from-epoch"])

    # Assert
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "f.csv")["HH_jit_L5_mean"].iloc[0] > 1e9  # the clock, as asked


def test_parquet_output_holds_the_csv_values(tmp_path):
    # Prepare
    write_synthetic_capture(tmp_path / "c.pcap", 300, seed=4)

    # Execute
    features_command(tmp_path / "c.pcap", tmp_path / "f.csv")
    features_command(tmp_path / "c.pcap", tmp_path / "f.parquet")

    # Assert: same columns, same values, and fedcl's reader takes either
    parquet = pd.read_parquet(tmp_path / "f.parquet")
    assert tuple(parquet.columns) == COLUMNS
    np.testing.assert_array_equal(parquet.to_numpy(), pd.read_csv(tmp_path / "f.csv").to_numpy())
    np.testing.assert_array_equal(read_feature_csv(tmp_path / "f.parquet"), read_feature_csv(tmp_path / "f.csv"))


def test_truncated_capture_to_parquet_keeps_a_readable_file(tmp_path):
    # Prepare
    capture = tmp_path / "c.pcap"
    write_synthetic_capture(capture, 120, seed=4)
    whole = extract_features(capture).to_numpy()
    capture.write_bytes(capture.read_bytes()[:-25])

    # Execute
    with pytest.raises(DataError, match="read 119 packets"):
        features_command(capture, tmp_path / "f.parquet")

    # Assert
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / "f.parquet").to_numpy(), whole[:119])


def test_unwritable_output_is_a_one_line_error_exit_2(tmp_path):
    # Prepare: the output name is taken by a folder
    app = typer.Typer()
    app.command("features")(bad_input_exits_2(features_command))
    app.command("other")(lambda: None)
    write_synthetic_capture(tmp_path / "c.pcap", 10, seed=4)
    (tmp_path / "f.parquet").mkdir()

    # Execute
    result = CliRunner().invoke(app, ["features", str(tmp_path / "c.pcap"), str(tmp_path / "f.parquet")])

    # Assert
    assert result.exit_code == 2
    assert "error: cannot write" in result.output and "directory" in result.output


def test_features_equal_one_pass_over_the_capture_across_chunks_and_pruning(tmp_path):
    # Prepare: more packets than one extraction chunk, and a pruning pass mid-capture (every 0.01 s)
    from fedcl.traffic import FeatureExtractor, pass_aligned_chunks, read_packets

    write_synthetic_capture(tmp_path / "c.pcap", 20_000, seed=5)
    packets = list(read_packets(tmp_path / "c.pcap"))
    whole = FeatureExtractor(prune_every=0.01).extract(packets)

    # Execute: the chunks fedcl features and fedcl detect extract, one call each
    extractor = FeatureExtractor(prune_every=0.01)
    chunks = list(pass_aligned_chunks(packets, 8192, extractor))
    rows = np.vstack([extractor.extract(chunk) for chunk in chunks])

    # Assert: bit for bit, and some chunk ended at a pruning pass rather than at 8,192 packets
    np.testing.assert_array_equal(rows, whole)
    assert any(0 < len(chunk) < 8192 for chunk in chunks[:-1])
    with pytest.raises(ValueError, match="multiple of 8,192"):
        next(pass_aligned_chunks(packets, 1000, extractor))
