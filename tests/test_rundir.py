"""A trained run directory read back: the settings it was trained with, also when older than a key."""

from fedcl.config import FedCLConfig, save_config
from fedcl.rundir import CONFIG_FILE, MODEL_FILE, load_run_config


def _saved(run, config, drop=()):
    # What `fedcl train` leaves for `fedcl evaluate` to read (the model's content is not read here)
    run.mkdir()
    save_config(config, run / CONFIG_FILE)
    lines = (run / CONFIG_FILE).read_text().splitlines()
    (run / CONFIG_FILE).write_text("\n".join(line for line in lines if not line.startswith(drop)))
    (run / MODEL_FILE).write_bytes(b"")
    return run


def test_a_run_saved_before_a_key_existed_reads_back_as_it_trained(tmp_path):
    old = _saved(tmp_path / "old", FedCLConfig(rounds=3), drop=("personalisation", "min_rows_per_round",
                                                                       "rows_per_reference", "relative_distance"))

    # no personal views, one epoch a round, the rows themselves as references for small nodes and distances
    # for scores; the rest as saved
    config = load_run_config(old)
    settings = (config.personalisation, config.min_rows_per_round, config.rows_per_reference,
                config.relative_distance, config.rounds)
    assert settings == ("off", 0, 1, False, 3)
    assert load_run_config(_saved(tmp_path / "new", FedCLConfig())) == FedCLConfig()


def test_an_unknown_schema_is_named_as_such_not_as_another_runs(tmp_path):
    import pytest

    from fedcl.errors import ConfigError
    from fedcl.rundir import check_schema

    run = _saved(tmp_path / "r", FedCLConfig())

    with pytest.raises(ConfigError, match="--schema foo: choose one of nbaiot, auto"):
        check_schema(run, "foo")
    with pytest.raises(ConfigError, match="trained with --schema nbaiot, not auto"):
        check_schema(run, "auto")
