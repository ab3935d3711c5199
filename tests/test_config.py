"""Tests for FedCLConfig, load_config and save_config."""

import dataclasses

import pytest

from fedcl.config import AGGREGATIONS, FedCLConfig, load_config, save_config


def write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_defaults_are_valid():
    config = FedCLConfig()

    assert config.aggregation in AGGREGATIONS
    assert config.temperature > 0 and config.rounds >= 1
    assert FedCLConfig(**config.to_dict()) == config


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FedCLConfig().rounds = 3


def test_updated_keeps_none_values():
    config = FedCLConfig().updated(rounds=3, lr=None)

    assert config.rounds == 3 and config.lr == FedCLConfig().lr


def test_load_reads_toml(tmp_path):
    path = write(tmp_path, 'rounds = 5\naggregation = "fedavg"\nnode_normalisation = false\ntemperature = 0.5\n')

    config = load_config(path)

    assert config == FedCLConfig(rounds=5, aggregation="fedavg", node_normalisation=False, temperature=0.5)


def test_load_accepts_int_for_float_keys(tmp_path):
    path = write(tmp_path, "lr = 1\ntemperature = 2\n")

    config = load_config(path)

    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.temperature == 2.0 and isinstance(config.temperature, float)


def test_load_applies_over_base(tmp_path):
    path = write(tmp_path, "rounds = 7\n")

    config = load_config(path, base=FedCLConfig(seed=42, rounds=2))

    assert (config.rounds, config.seed) == (7, 42)


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, "rounds = 5\nlearning_rate = 0.1\n")

    with pytest.raises(ValueError, match="learning_rate"):
        load_config(path)


@pytest.mark.parametrize("line, key", [
    ('rounds = "5"', "rounds"),
    ("rounds = 5.0", "rounds"),
    ("rounds = true", "rounds"),
    ("lr = true", "lr"),
    ('lr = "fast"', "lr"),
    ("node_normalisation = 1", "node_normalisation"),
    ("aggregation = 1", "aggregation"),
])
def test_wrong_type_raises(tmp_path, line, key):
    path = write(tmp_path, line + "\n")

    with pytest.raises(ValueError, match=key):
        load_config(path)


@pytest.mark.parametrize("line, message", [
    ('aggregation = "mean"', "aggregation"),
    ("temperature = 0", "temperature"),
    ("temperature = -0.5", "temperature"),
    ("temperature = 1e-30", "temperature"),  # the loss's own floor, refused before training
    ("lr = inf", "lr must be positive and finite"),
    ("consistency_weight = inf", "consistency_weight"),
    ("noise_std = nan", "noise_std"),
    ("rounds = 0", "rounds"),
    ("batch_size = 1", "batch_size"),
    ("mask_prob = 1.0", "mask_prob"),
    ("fpr_target = 0", "fpr_target"),
    ('layout = "csv"', "layout"),
    ("val_fraction = 0.6\ntest_fraction = 0.4", "val_fraction"),
    ("acceptance_margin = 1.5", "acceptance_margin"),
    ("acceptance_quorum = 0", "acceptance_quorum"),
    ("acceptance_margin = 0.7\ndp_epsilon = 8.0", "acceptance_margin releases each node's references"),
])
def test_invalid_value_raises(tmp_path, line, message):
    path = write(tmp_path, line + "\n")

    with pytest.raises(ValueError, match=message):
        load_config(path)


@pytest.mark.parametrize("kwargs", [{"aggregation": "mean"}, {"temperature": 0.0}, {"consistency_weight": -1.0}])
def test_constructor_validates(kwargs):
    with pytest.raises(ValueError):
        FedCLConfig(**kwargs)


def test_missing_or_malformed_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ValueError, match="is a folder"):
        load_config(tmp_path)
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match="not a text file"):
        load_config(tmp_path / "binary.toml")
    with pytest.raises(ValueError, match="TOML"):
        load_config(write(tmp_path, "rounds = = 3\n"))


@pytest.mark.parametrize("config", [
    FedCLConfig(),
    FedCLConfig(data='C:\\data\\n "baiot"', rounds=3, lr=1e-10, temperature=2.0, aggregation="fedavg",
                node_normalisation=False, consistency_weight=0.0, seed=123, test_fraction=0.0),
])
def test_save_then_load_round_trips(tmp_path, config):
    path = tmp_path / "saved.toml"

    save_config(config, path)
    loaded = load_config(path)

    assert loaded == config
    assert all(type(getattr(loaded, f.name)) is type(getattr(config, f.name)) for f in dataclasses.fields(config))


def test_save_then_load_keeps_awkward_strings(tmp_path):
    config = FedCLConfig(data='dir with "quotes"\\and\nnewline')
    save_config(config, tmp_path / "c.toml")
    assert load_config(tmp_path / "c.toml") == config
