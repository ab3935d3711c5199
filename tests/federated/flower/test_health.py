"""Reaching a SuperLink: each way it can fail is told apart, in one line."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading

import psutil
import pytest

from fedcl.errors import ConfigError, InputError
from fedcl.federated.flower.certificates import generate_certificates
from fedcl.federated.flower.health import on_this_machine, probe_superlink, wait_healthy


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(tls_certs=None) -> tuple[str, http.server.HTTPServer]:
    """A stand-in for a SuperLink's /health on 127.0.0.1 (TLS with ``tls_certs``), in a thread."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    if tls_certs is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_certs.server_cert, tls_certs.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}", server


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    return generate_certificates(root / "ours"), generate_certificates(root / "stranger")


@pytest.fixture(scope="module")
def tls_superlink(pki):
    address, server = _serve(pki[0])
    yield address
    server.shutdown()


@pytest.fixture(scope="module")
def plain_superlink():
    address, server = _serve()
    yield address
    server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_superlink_that_answers_with_a_trusted_certificate_passes(pki, tls_superlink, plain_superlink):
    probe_superlink(tls_superlink, pki[0].ca_cert)
    probe_superlink(plain_superlink, insecure=True)
    assert wait_healthy(tls_superlink, pki[0].ca_cert, timeout=5) < 5


@pytest.mark.parametrize("case, expected", [
    ("dead port", "nothing listens at"),
    ("another CA", "is not trusted with"),
    ("TLS against plain", "does the SuperLink run with --insecure"),
    ("plain against TLS", "the SuperLink probably uses TLS"),
])
def test_each_failure_is_one_line_that_names_its_cause(pki, tls_superlink, plain_superlink, case, expected):
    # Prepare
    ours, stranger = pki
    address, ca, insecure = {
        "dead port": (f"127.0.0.1:{_free_port()}", ours.ca_cert, False),
        "another CA": (tls_superlink, stranger.ca_cert, False),
        "TLS against plain": (plain_superlink, ours.ca_cert, False),
        "plain against TLS": (tls_superlink, None, True),
    }[case]

    # Execute
    with pytest.raises(InputError) as failed:
        probe_superlink(address, ca, insecure=insecure, timeout=5)

    # Assert
    assert expected in str(failed.value) and "\n" not in str(failed.value)


def test_waiting_does_not_outlast_a_certificate_that_will_never_be_trusted(pki, tls_superlink):
    with pytest.raises(InputError, match="not trusted"):
        wait_healthy(tls_superlink, pki[1].ca_cert, timeout=60)


@pytest.mark.parametrize("content, expected", [(None, "not found"), (b"garbage\n", "not a PEM certificate")])
def test_a_missing_or_garbled_ca_file_is_a_config_error(tmp_path, content, expected):
    # Prepare
    ca = tmp_path / "ca.crt"
    if content is not None:
        ca.write_bytes(content)

    # Execute / Assert: refused before any connection is tried
    with pytest.raises(ConfigError, match=expected):
        probe_superlink("127.0.0.1:9", ca)


def test_an_address_without_a_port_is_refused():
    with pytest.raises(ConfigError, match="HOST:PORT"):
        probe_superlink("127.0.0.1", insecure=True)


def test_loopback_and_own_interface_addresses_are_this_machine():
    own = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs if a.family == socket.AF_INET]
    assert on_this_machine("127.0.0.1:9092") and on_this_machine("localhost:9092")
    assert all(on_this_machine(f"{a}:9092") for a in own)
    assert not on_this_machine("192.0.2.1:9092")  # TEST-NET-1: documentation only, never assigned
    assert not on_this_machine("no-such-host.invalid:9092")

