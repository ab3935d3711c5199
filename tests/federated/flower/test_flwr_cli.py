"""fedcl's calls of the `flwr` CLI: a failure is flwr's own reason, in one line, never "failed (exit 0)"."""

from __future__ import annotations

import socket

import pytest

from fedcl.errors import InputError
from fedcl.federated.flower.flwr_cli import FlwrError, flwr_home_env, list_nodes


def test_a_flwr_failure_is_an_input_error_with_flwrs_reason_in_one_line(tmp_path):
    # Prepare: a connection to a port nobody listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    env = flwr_home_env(tmp_path / "flwr-home", address, insecure=True)

    # Execute: the real flwr, which exits 0 in JSON mode whatever happened
    with pytest.raises(FlwrError) as failed:
        list_nodes(env)

    # Assert
    text = str(failed.value)
    assert isinstance(failed.value, InputError)
    assert "Connection to the SuperLink is unavailable" in text
    assert "\n" not in text and "exit 0" not in text and "Using SuperLink" not in text
