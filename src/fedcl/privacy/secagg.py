"""Secure aggregation by pairwise and self masking with dropout recovery (Bonawitz et al., CCS 2017).

The parties are objects that hold only what they hold in the protocol, and :func:`secure_sum` carries
the messages between them in one process, so a test can read exactly what the server saw. One
protocol instance sums one vector per node; its keys are fresh and never serve another instance.

0. Advertise keys: node u makes two X25519 key pairs, c_u to encrypt shares for its peers and s_u to
   agree pairwise mask seeds, and sends both public keys.
1. Share keys: u draws a self-mask seed b_u and splits b_u and the private key of s_u into Shamir
   shares (threshold t), one per node, each sealed for its holder with ChaCha20-Poly1305 under
   HKDF(X25519(c_u, c_v)); the server only relays the ciphertexts.
2. Masked input: u sends y_u = x_u + PRG(b_u) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv) mod 2^64, x_u its
   fixed-point vector (:mod:`fedcl.privacy.fixed_point`), s_uv = HKDF(X25519(s_u, s_v)), PRG the
   ChaCha20 key stream. In Σ_u y_u every pairwise mask appears once with + and once with −.
3. Unmasking: the server names the nodes whose y_u arrived; each of them returns its share of b_u for
   every survivor u and of s_u's private key for every node that dropped after step 1, never both
   for one node. With t shares of each, the server removes the survivors' self masks and the
   pairwise masks the survivors still carry for the dropped nodes.

Without b_u, a node that the server wrongly declares dropped and whose y_u arrives late stays
masked; with fewer than t shares, Shamir's scheme says nothing about a secret.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import numpy as np
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedcl.privacy.fixed_point import MAX_NODES, decode, encode

__all__ = ["Aborted", "Node", "SecureSum", "Server", "default_threshold", "secure_sum"]


class Aborted(ValueError):
    """Too few nodes for a masked sum: the round cannot aggregate without revealing someone's update."""

Keys = tuple[bytes, bytes]  # raw public keys (c_u, s_u), 32 bytes each


def default_threshold(n_nodes: int) -> int:
    """t = ⌊n/2⌋ + 1: a majority. Up to ⌈n/2⌉ − 1 nodes may drop and the sum is still recovered;
    t − 1 nodes, even pooling their shares with the server, cannot unmask anyone."""
    return n_nodes // 2 + 1


def _kdf(shared: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fedcl secagg " + purpose).derive(shared)


def _prg(seed: bytes, length: int) -> np.ndarray:
    """``length`` uint64 words of the ChaCha20 key stream under ``seed`` (each seed keys one stream,
    so the all-zero nonce is never reused)."""
    stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor().update(bytes(8 * length))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


def _pair_seed(own: X25519PrivateKey, peer_public: bytes) -> bytes:
    return _kdf(own.exchange(X25519PublicKey.from_public_bytes(peer_public)), b"pairwise mask")


def _split(secret: bytes, threshold: int, ids: list[int]) -> dict[int, bytes]:
    """Shamir shares of a 32-byte secret, holder ids[j] getting share index j + 1: pycryptodome shares
    16-byte secrets, so each half is shared apart and a share is the two halves' shares (32 bytes)."""
    lo, hi = (Shamir.split(threshold, len(ids), secret[k : k + 16]) for k in (0, 16))
    return {v: lo[j][1] + hi[j][1] for j, v in enumerate(ids)}


def _combine(shares: list[tuple[int, bytes]]) -> bytes:
    return b"".join(Shamir.combine([(i, s[k : k + 16]) for i, s in shares]) for k in (0, 16))


def _channel(u: int, v: int) -> bytes:
    return u.to_bytes(4, "big") + v.to_bytes(4, "big")  # per direction: a unique nonce under a pair's key


class Node:
    """One node of one protocol instance: its fixed-point input, its secrets and the shares its peers
    sent it. Only what its methods return leaves it."""

    def __init__(self, node_id: int, vector: np.ndarray):
        if node_id < 1:
            raise ValueError(f"node ids start at 1, got {node_id}")
        self.id = node_id
        self._x = encode(vector)
        self._c, self._s = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        self._b = secrets.token_bytes(32)  # self-mask seed
        self._keys: dict[int, Keys] = {}
        self._t: int | None = None  # threshold, from step 1
        self._held: dict[int, tuple[bytes, bytes]] = {}  # u -> (share of b_u, share of u's s key)
        self._revealed: dict[int, str] = {}  # u -> which of u's secrets this node has given a share of

    def to_bytes(self) -> bytes:
        """The node's whole state, secrets included, for a node that lives across processes (a Flower
        SuperNode starts one per message): it stays on the node (``context.state``), never on the wire."""
        pair = lambda a, b: [a.hex(), b.hex()]  # noqa: E731
        header = json.dumps({
            "id": self.id, "c": self._c.private_bytes_raw().hex(), "s": self._s.private_bytes_raw().hex(),
            "b": self._b.hex(), "t": self._t, "keys": {u: pair(*k) for u, k in self._keys.items()},
            "held": {u: pair(*h) for u, h in self._held.items()}, "revealed": self._revealed,
        }).encode()
        return len(header).to_bytes(4, "big") + header + self._x.astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Node:
        """The node :meth:`to_bytes` saved, at the step where it stopped."""
        size = int.from_bytes(data[:4], "big")
        state = json.loads(data[4 : 4 + size])
        pair = lambda p: (bytes.fromhex(p[0]), bytes.fromhex(p[1]))  # noqa: E731
        node = cls.__new__(cls)
        node.id, node._t, node._b = state["id"], state["t"], bytes.fromhex(state["b"])
        node._x = np.frombuffer(data[4 + size :], dtype="<u8").astype(np.uint64)
        node._c, node._s = (X25519PrivateKey.from_private_bytes(bytes.fromhex(state[k])) for k in ("c", "s"))
        node._keys = {int(u): pair(k) for u, k in state["keys"].items()}
        node._held = {int(u): pair(h) for u, h in state["held"].items()}
        node._revealed = {int(u): k for u, k in state["revealed"].items()}
        return node

    def advertise_keys(self) -> Keys:
        return tuple(k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for k in (self._c, self._s))

    def _aead(self, peer: int) -> ChaCha20Poly1305:
        shared = self._c.exchange(X25519PublicKey.from_public_bytes(self._keys[peer][0]))
        return ChaCha20Poly1305(_kdf(shared, b"shares"))

    def share_keys(self, keys: dict[int, Keys], threshold: int) -> dict[int, bytes]:
        """For every node v (itself included): its shares of b_u and of s_u's key, sealed for v."""
        if keys.get(self.id) != self.advertise_keys() or len(set(keys.values())) < len(keys):
            raise ValueError("the key list must hold this node's own keys and no key twice")
        if not 2 <= threshold <= len(keys):
            raise ValueError(f"threshold must be in [2, {len(keys)}], got {threshold}")
        self._keys, self._t, ids = dict(keys), threshold, sorted(keys)
        b, s = _split(self._b, threshold, ids), _split(self._s.private_bytes_raw(), threshold, ids)
        return {v: self._aead(v).encrypt(_channel(self.id, v) + bytes(4), b[v] + s[v], _channel(self.id, v))
                for v in ids}

    def masked_input(self, sealed: dict[int, bytes]) -> np.ndarray:
        """Keep the shares sealed for this node; return y_u. Pairwise masks are agreed with the
        nodes whose shares arrived, which the server sees the same way."""
        if len(sealed) < self._t:
            raise ValueError(f"shares from {len(sealed)} nodes, fewer than the threshold {self._t}")
        for u, ciphertext in sealed.items():
            plain = self._aead(u).decrypt(_channel(u, self.id) + bytes(4), ciphertext, _channel(u, self.id))
            self._held[u] = (plain[:32], plain[32:])
        y = self._x + _prg(self._b, len(self._x))
        for v in sealed:
            if v != self.id:
                mask = _prg(_pair_seed(self._s, self._keys[v][1]), len(self._x))
                y = y + mask if self.id < v else y - mask  # + for the lower id of the pair, − for the higher
        return y

    def unmasking_shares(self, survivors: list[int]) -> dict[int, bytes]:
        """For each node u that shared keys: a share of b_u if u survived, of u's s key if it dropped;
        never both for one node, whatever the server asks later."""
        alive = set(survivors)
        if self.id not in alive or len(alive) < self._t or not alive <= set(self._held):
            raise ValueError("the survivors must include this node, be at least the threshold and have shared keys")
        out = {}
        for u, (b_share, s_share) in self._held.items():
            kind = "b" if u in alive else "s"
            if self._revealed.setdefault(u, kind) != kind:
                raise ValueError(f"refusing to reveal shares of both secrets of node {u}")
            out[u] = b_share if kind == "b" else s_share
        return out


class Server:
    """The aggregator. It relays keys and sealed shares, sums masked vectors and unmasks the sum;
    everything it receives stays in its attributes (``keys``, ``sealed``, ``masked``, ``shares``)."""

    def __init__(self, threshold: int | None = None):
        self.requested_threshold = threshold

    def collect_keys(self, keys: dict[int, Keys]) -> dict[int, Keys]:
        if not 2 <= len(keys) <= MAX_NODES:
            raise Aborted(f"secure aggregation needs 2 to {MAX_NODES} nodes, got {len(keys)}")
        self.keys = dict(keys)
        self.threshold = self.requested_threshold or default_threshold(len(keys))
        self._index = {v: j + 1 for j, v in enumerate(sorted(keys))}  # Shamir index of each holder
        return self.keys

    def route(self, sealed: dict[int, dict[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Each node's inbox: the shares every node that finished step 1 sealed for it."""
        self.sealed = sealed
        self._check(sealed, "shared keys")
        return {v: {u: out[v] for u, out in sealed.items()} for v in sealed}

    def collect_masked(self, masked: dict[int, np.ndarray]) -> list[int]:
        self.masked = masked
        self._check(masked, "sent a masked vector")
        return sorted(masked)

    def unmask(self, shares: dict[int, dict[int, bytes]]) -> np.ndarray:
        """Σ x_u over the survivors, decoded to float64."""
        self.shares = shares
        self._check(shares, "sent unmasking shares")
        holders, survivors = sorted(shares)[: self.threshold], sorted(self.masked)
        total = np.sum(np.stack(list(self.masked.values())), axis=0, dtype=np.uint64)  # wraps mod 2^64
        for u in self.sealed:
            secret = _combine([(self._index[v], shares[v][u]) for v in holders])
            if u in self.masked:
                total = total - _prg(secret, len(total))
                continue
            dropped = X25519PrivateKey.from_private_bytes(secret)
            for v in survivors:  # v still carries +mask if v < u, −mask if v > u
                mask = _prg(_pair_seed(dropped, self.keys[v][1]), len(total))
                total = total - mask if v < u else total + mask
        return decode(total)

    def _check(self, replies: dict, what: str) -> None:
        if len(replies) < self.threshold:
            raise Aborted(f"only {len(replies)} nodes {what}, fewer than the threshold {self.threshold}: "
                             "the round is aborted")


@dataclass
class SecureSum:
    """Result of :func:`secure_sum`: the sum, whose vectors it holds, the server (its view) and the
    bytes each node sent."""

    total: np.ndarray
    survivors: list[int]
    server: Server
    sent_bytes: dict[int, int]


def secure_sum(vectors: dict[int, np.ndarray], dropped: set[int] | frozenset[int] = frozenset(),
               threshold: int | None = None) -> SecureSum:
    """Σ of the vectors of the nodes that did not drop, learned by a server that sees only masked ones.

    Parameters
    ----------
    vectors : dict of node id (≥ 1) -> ndarray of shape (dim,)
        Each node's input, inside ±:data:`~fedcl.privacy.fixed_point.CLIP`.
    dropped : set of int
        Nodes that drop after sharing their keys (step 1), before sending a masked vector.
    threshold : int, optional
        Shares needed to rebuild a secret (default :func:`default_threshold`).
    """
    if len({np.shape(v) for v in vectors.values()}) != 1 or np.ndim(next(iter(vectors.values()))) != 1:
        raise ValueError("every node needs a 1-D vector of the same length")
    nodes = {i: Node(i, v) for i, v in vectors.items()}
    server = Server(threshold)
    keys = server.collect_keys({i: node.advertise_keys() for i, node in nodes.items()})
    outgoing = {i: node.share_keys(keys, server.threshold) for i, node in nodes.items()}
    inbox = server.route(outgoing)
    masked = {i: nodes[i].masked_input(inbox[i]) for i in inbox if i not in dropped}
    survivors = server.collect_masked(masked)
    shares = {i: nodes[i].unmasking_shares(survivors) for i in survivors}
    total = server.unmask(shares)
    sent = {i: 64 + sum(map(len, outgoing[i].values())) + (masked[i].nbytes if i in masked else 0)
            + sum(map(len, shares.get(i, {}).values())) for i in nodes}
    return SecureSum(total, survivors, server, sent)
