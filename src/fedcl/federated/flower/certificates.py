"""TLS certificates for the SuperLink and authentication keys for the SuperNodes.

Plain file writers: nothing here starts a process or talks to a server. ``ca.crt`` goes to every
SuperNode and to whoever submits runs; ``server.pem`` and ``server.key`` stay on the SuperLink
machine; each ``node-<i>.key`` stays on its node, and its ``node-<i>.pub`` is enrolled on the
coordinator (:mod:`.registry`). See ``docs/flower-deployment.md``.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedcl.errors import ConfigError

__all__ = ["LOOPBACK_HOSTS", "Certificates", "check_new_pki", "generate_certificates", "generate_node_keys",
           "node_key_paths"]

#: Hosts every server certificate covers: the SuperLink starts its own ServerApp executor, which
#: connects back over TLS to 127.0.0.1 when the SuperLink listens on 0.0.0.0 (flwr's
#: resolve_bind_address), so a certificate without them breaks every run.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Certificates:
    """Paths of the TLS files :func:`generate_certificates` writes.

    ``ca_cert`` goes to every SuperNode and to whoever submits runs (``--root-certificates``);
    ``server_cert`` and ``server_key`` stay on the SuperLink machine.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_dir(cls, directory: str | Path) -> "Certificates":
        """The file names :func:`generate_certificates` uses, in ``directory``."""
        d = Path(directory)
        return cls(ca_cert=d / "ca.crt", server_cert=d / "server.pem", server_key=d / "server.key")


def _write_private(path: Path, data: bytes) -> None:
    # Private keys are created 0600 from the start, never briefly world-readable.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _refuse_overwrite(paths: Iterable[Path], what: str) -> None:
    # Replacing a CA or a node key locks every node that holds the old one out: only on request.
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ConfigError(f"{existing[0].parent} already holds {what} ({', '.join(p.name for p in existing)}): "
                          "deployed nodes may depend on them; pass --force to replace them")


def node_key_paths(out_dir: str | Path, n: int, first: int = 1) -> list[tuple[Path, Path]]:
    """(private, public) key paths of nodes ``first`` ... ``first+n-1`` in ``out_dir``."""
    return [(Path(out_dir) / f"node-{i}.key", Path(out_dir) / f"node-{i}.pub") for i in range(first, first + n)]


def check_new_pki(out_dir: str | Path, nodes: int = 0) -> None:
    """ConfigError if ``out_dir`` already holds TLS files, or keys of the first ``nodes`` nodes in ``out_dir/nodes``.

    Checks everything before anything is written, so a refused ``certs`` leaves no half-new set behind.
    """
    certs = Certificates.in_dir(out_dir)
    _refuse_overwrite([certs.ca_cert, certs.server_cert, certs.server_key], "a PKI")
    _refuse_overwrite([p for pair in node_key_paths(Path(out_dir) / "nodes", nodes) for p in pair], "node keys")


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # de-duplicated, order kept
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate_certificates(out_dir: str | Path, hosts: Sequence[str] = LOOPBACK_HOSTS,
                          days: int = 365, overwrite: bool = False) -> Certificates:
    """Write a self-signed CA and a SuperLink certificate signed by it.

    Parameters
    ----------
    out_dir : str or Path
        Folder for ``ca.crt``, ``server.pem`` and ``server.key`` (created).
    hosts : sequence of str
        Names and IP addresses SuperNodes and ``flwr`` use to reach the SuperLink; they go in the
        certificate's subjectAltName. ``127.0.0.1`` and ``localhost`` are always added (the
        SuperLink's own ServerApp executor connects through loopback).
    days : int
        Validity of both certificates.
    overwrite : bool
        Replace files of an earlier set; otherwise any of them existing raises ConfigError.

    Returns
    -------
    Certificates

    Notes
    -----
    The CA private key is never written: it exists only to sign the server certificate, so it
    cannot leak. To cover other hosts later, generate a new set and hand out the new ``ca.crt``.
    Keys are ECDSA P-256 (fast, accepted by every TLS stack in use).
    """
    certs = Certificates.in_dir(out_dir)
    if not overwrite:
        _refuse_overwrite([certs.ca_cert, certs.server_cert, certs.server_key], "a PKI")
    now = _dt.datetime.now(_dt.timezone.utc)
    not_before, not_after = now - _dt.timedelta(minutes=5), now + _dt.timedelta(days=days)  # clock skew

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedcl"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "fedcl federation CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    all_hosts = [*hosts, *LOOPBACK_HOSTS]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedcl"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, all_hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(all_hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    certs.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    certs.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(certs.server_key, server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certs


def generate_node_keys(out_dir: str | Path, n: int, first: int = 1,
                       overwrite: bool = False) -> list[tuple[Path, Path]]:
    """Write ``n`` SuperNode authentication key pairs, ``node-<i>.key`` / ``node-<i>.pub``.

    flwr 1.42 authenticates SuperNodes by an ECDSA key on a NIST curve in OpenSSH format: the
    node signs its requests with the private key (``flower-supernode
    --auth-supernode-private-key``), and the SuperLink (``--enable-supernode-auth``) accepts only
    public keys registered with ``flwr supernode register``
    (:func:`~fedcl.federated.flower.flwr_cli.register_supernodes`). There is no key-list file any
    more (``--auth-list-public-keys`` was removed).

    Parameters
    ----------
    out_dir : str or Path
        Folder for the keys (created).
    n : int
        Number of key pairs.
    first : int
        Index of the first pair (file names ``node-<first>`` ... ``node-<first+n-1>``).
    overwrite : bool
        Replace existing pairs of those names; otherwise any of them existing raises ConfigError.

    Returns
    -------
    list of (Path, Path)
        (private key, public key) per node. The private key stays on its node; the public key
        goes to the coordinator, which enrols it with the node's name and partition id
        (:func:`~fedcl.federated.flower.registry.enrol`).
    """
    out = Path(out_dir)
    paths = node_key_paths(out, n, first)
    if not overwrite:
        _refuse_overwrite([p for pair in paths for p in pair], "node keys")
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for private, public in paths:
        key = ec.generate_private_key(ec.SECP384R1())  # P-384: the curve Flower's docs use
        _write_private(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                  serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                         serialization.PublicFormat.OpenSSH) + b"\n")
        pairs.append((private, public))
    return pairs
