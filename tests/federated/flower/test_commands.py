"""The argv fedcl builds for flower-superlink, flower-supernode and flwr run, and the app they run."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import fields

import pytest
from flwr.common.config import parse_config_args
from typer.testing import CliRunner

from fedcl.cli import app as fedcl_cli
from fedcl.config import FedCLConfig
from fedcl.federated.flower import service
from fedcl.federated.flower.commands import default_app_dir, superlink_command, supernode_command


def test_app_config_lists_every_run_setting_with_fedcl_defaults():
    # Flower rejects `flwr run -c` keys missing from [tool.flwr.app.config]: every setting the
    # ServerApp reads must be there, with the same default as `fedcl train`.
    app = tomllib.loads((default_app_dir() / "pyproject.toml").read_text())
    config = app["tool"]["flwr"]["app"]["config"]
    names = {f.name for f in fields(FedCLConfig)} - {"data"}  # data paths are per node
    assert set(config) == names | {"out-dir", "min-nodes", "round-timeout", "resume", "evaluate",
                                    "sample-fraction", "timeout-multiple", "timeout-floor"}
    assert {n: config[n] for n in names} == {n: getattr(FedCLConfig(), n) for n in names}
    assert app["project"]["dependencies"] == []  # nothing to install at run time


def test_node_authentication_needs_tls():
    with pytest.raises(ValueError, match="TLS"):
        superlink_command(insecure=True, supernode_auth=True)
    with pytest.raises(ValueError, match="TLS"):
        supernode_command(superlink="127.0.0.1:9092", data_path=".", partition_id=1, insecure=True,
                          private_key="node-1.key")


def test_supernode_node_config_carries_the_partition_id_and_an_absolute_quoted_path(tmp_path):
    # Prepare
    data = tmp_path / "gateway one"

    # Execute
    argv = supernode_command(superlink="10.0.0.5:9092", data_path=data, partition_id=3, node_name="Client-2",
                             root_certificates=tmp_path / "ca.crt")

    # Assert: read back as flower-supernode reads it (a path with a space stays one value)
    node_config = parse_config_args([argv[argv.index("--node-config") + 1]])
    assert node_config == {"data-path": str(data.resolve()), "partition-id": 3, "node-name": "Client-2"}


@pytest.mark.parametrize("node, refusal", [
    (None, "holds 3 nodes (Client-1, Client-2, Client-3); give --node-name"),
    ("Client-9", "no node named 'Client-9' (found Client-1, Client-2, Client-3) (--node-name)"),
])
def test_a_supernode_on_a_folder_of_several_nodes_names_one_of_them_before_it_starts(node, refusal, fedmse_slice,
                                                                                    monkeypatch):
    started = []
    monkeypatch.setattr(service.Service, "__enter__", lambda self: started.append(self.argv) or self)

    result = CliRunner().invoke(fedcl_cli, ["flower", "supernode", "--data", str(fedmse_slice), "--superlink",
                                            "127.0.0.1:9092", "--partition-id", "1", "--insecure",
                                            *(["--node-name", node] if node else [])])

    assert result.exit_code == 2 and refusal in result.output
    assert len(result.output.strip().splitlines()) == 1 and started == []


def test_a_folder_of_several_layouts_is_left_to_the_run_s_layout_key(fedmse_slice, tmp_path):
    from fedcl.cli.flower import _served_node

    both = tmp_path / "gateway"
    shutil.copytree(fedmse_slice / "Client-1", both / "Client-1")
    (both / "1.benign.csv").write_text("")  # a Kaggle file too: only the run's layout says which to read

    assert _served_node(both, None) == "gateway"
    assert _served_node(both, "Client-1") == "Client-1"


def test_fedcl_flower_supernode_requires_a_partition_id(fedmse_slice, monkeypatch):
    # Prepare: never start a real SuperNode
    started = []
    monkeypatch.setattr(service.Service, "__enter__", lambda self: started.append(self.argv) or self)

    # Execute
    result = CliRunner().invoke(fedcl_cli, ["flower", "supernode", "--data", str(fedmse_slice / "Client-1"),
                                            "--superlink", "127.0.0.1:9092", "--insecure"])

    # Assert
    assert result.exit_code == 2
    assert "--partition-id" in result.output
    assert started == []
