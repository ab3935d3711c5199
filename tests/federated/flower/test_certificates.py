"""TLS certificates and SuperNode keys for a Flower deployment."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedcl.federated.flower.certificates import generate_certificates, generate_node_keys


def test_server_certificate_is_signed_by_the_ca_for_every_host(tmp_path):
    # Execute
    certs = generate_certificates(tmp_path, hosts=("10.0.0.5", "superlink.lan"))

    # Assert
    ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"10.0.0.5", "127.0.0.1"}
    assert set(san.get_values_for_type(x509.DNSName)) == {"superlink.lan", "localhost"}
    assert certs.server_key.stat().st_mode & 0o077 == 0


def test_node_keys_are_private_openssh_ecdsa_pairs(tmp_path):
    # Execute
    pairs = generate_node_keys(tmp_path / "nodes", 2, first=3)

    # Assert
    assert [(k.name, p.name) for k, p in pairs] == [("node-3.key", "node-3.pub"), ("node-4.key", "node-4.pub")]
    for private, public in pairs:
        assert private.stat().st_mode & 0o077 == 0
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
        assert key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) \
            == public.read_bytes().strip()
