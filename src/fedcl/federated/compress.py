"""Parameters on the wire in a few bits each: block-wise quantisation with error feedback, both ways.

Each node sends Q(Δθ_i + e_i) and keeps e_i ← Δθ_i + e_i − Q(Δθ_i + e_i), so what rounding leaves out
of one round goes out in the next (error feedback; Karimireddy et al. 2019). The server keeps its
exact θ and broadcasts Q(θ − θ̂), where θ̂ is the model the nodes hold; they train from
θ̂ ← θ̂ + Q(θ − θ̂), which the server computes too. Since θ − θ̂ carries every earlier rounding error,
the downlink needs no residual of its own. A node that does not hold the θ̂ a delta is taken
against (it missed a round, or restarted) gets θ̂ in full, in float32.

Q: blocks of :data:`BLOCK` parameters, each scaled by its largest magnitude to the integers
−L..L, L = 2^(bits−1) − 1, packed ``bits`` to a parameter, plus one float32 scale per block.
Numpy only: a node's process imports it without torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

BLOCK = 64  # parameters per scale: a float32 scale costs half a bit per parameter; small blocks keep outliers local
BITS = range(2, 9)  # supported widths; 1 bit would leave only the sign and zero out every small parameter


@dataclass(frozen=True)
class Packed:
    """A quantised float vector: ``size`` codes of ``bits`` bits each, and one scale per block."""

    codes: np.ndarray  # uint8, the codes' bits packed end to end
    scales: np.ndarray  # float32, one per block of BLOCK parameters
    bits: int
    size: int

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes

    @classmethod
    def from_wire(cls, arrays: list[np.ndarray], bits: int, size: int) -> "Packed":
        """The [codes, scales] a message carries, checked: ValueError unless they encode ``size`` values."""
        _levels(bits)
        if len(arrays) != 2:
            raise ValueError(f"a packed update is [codes, scales], got {len(arrays)} arrays")
        codes, scales = arrays
        if codes.dtype != np.uint8 or codes.shape != (-(-size * bits // 8),):
            raise ValueError(f"packed codes must be {-(-size * bits // 8)} uint8, got {codes.shape} {codes.dtype}")
        if scales.dtype != np.float32 or scales.shape != (-(-size // BLOCK),) or not np.all(np.isfinite(scales)):
            raise ValueError(f"packed scales must be {-(-size // BLOCK)} finite float32, got {scales.shape} {scales.dtype}")
        return cls(codes, scales, bits, size)


def _levels(bits: int) -> int:
    if bits not in BITS:
        raise ValueError(f"bits must be in {BITS.start}..{BITS.stop - 1}, got {bits}")
    return 2 ** (bits - 1) - 1


def quantise(vector: np.ndarray, bits: int) -> Packed:
    """Q(vector): round each block of :data:`BLOCK` values to ``bits``-bit integers of its own scale."""
    levels = _levels(bits)
    x = np.asarray(vector, dtype=np.float32).ravel()
    if not np.all(np.isfinite(x)):  # would spoil its block, and through the residual every later round
        raise ValueError("cannot quantise an update with non-finite values")
    blocks = np.zeros(-(-len(x) // BLOCK) * BLOCK, dtype=np.float32)
    blocks[: len(x)] = x
    blocks = blocks.reshape(-1, BLOCK)
    scales = (np.abs(blocks).max(axis=1) / levels).astype(np.float32)
    safe = np.where(scales > 0, scales, 1)[:, None]
    codes = (np.clip(np.rint(blocks / safe), -levels, levels) + levels).astype(np.uint8)  # 0..2L
    code_bits = np.unpackbits(codes.ravel()[: len(x), None], axis=1)[:, 8 - bits:]  # the low ``bits`` bits
    return Packed(np.packbits(code_bits), scales, bits, len(x))


def dequantise(packed: Packed) -> np.ndarray:
    """The float32 vector that :func:`quantise` encoded (the receiver's copy, bit for bit the sender's)."""
    levels = _levels(packed.bits)
    code_bits = np.unpackbits(packed.codes, count=packed.size * packed.bits).reshape(packed.size, packed.bits)
    codes = np.packbits(np.pad(code_bits, ((0, 0), (8 - packed.bits, 0))), axis=1)[:, 0]  # back to one byte each
    values = codes.astype(np.float32) - levels
    return values * np.repeat(packed.scales, BLOCK)[: packed.size]


def compress(vector: np.ndarray, residual: np.ndarray | None, bits: int) -> tuple[Packed, np.ndarray, np.ndarray]:
    """(Q(vector + residual), what the receiver decodes, the new residual): one sender's error feedback."""
    target = np.asarray(vector, dtype=np.float32).ravel()
    if residual is not None:
        target = target + residual
    packed = quantise(target, bits)
    decoded = dequantise(packed)
    return packed, decoded, target - decoded


def flatten(arrays: list[np.ndarray]) -> np.ndarray:
    """The model's arrays as one float32 vector, in order."""
    return np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])


def unflatten(vector: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    """``vector`` cut back into arrays shaped (and typed) like ``like``."""
    bounds = np.cumsum([0] + [a.size for a in like])
    if bounds[-1] != len(vector):
        raise ValueError(f"{len(vector)} values for arrays of {bounds[-1]}")
    return [vector[start:stop].reshape(a.shape).astype(a.dtype, copy=False)
            for start, stop, a in zip(bounds[:-1], bounds[1:], like)]


def fingerprint(arrays: list[np.ndarray]) -> str:
    """A short hash of the parameters' float32 bytes: which θ̂ a node holds, checked before a delta applies."""
    return hashlib.sha256(flatten(arrays).tobytes()).hexdigest()[:16]


class Broadcast:
    """The server's side of the downlink: its exact θ and the θ̂ the nodes hold.

    ``step(theta)`` returns the packed delta that takes θ̂ to the next θ̂ and moves θ̂ there;
    ``held`` is θ̂ as arrays (what nodes train from, and what node updates are taken against).
    """

    def __init__(self, held: list[np.ndarray], bits: int) -> None:
        self.held = [np.asarray(a, dtype=np.float32).copy() for a in held]
        self.bits = bits

    def step(self, theta: list[np.ndarray]) -> Packed:
        packed = quantise(flatten(theta) - flatten(self.held), self.bits)
        self.held = applied(self.held, packed)
        return packed


def applied(held: list[np.ndarray], packed: Packed) -> list[np.ndarray]:
    """θ̂ + Q(δ): the next model a node holds, computed alike on the server and on the node."""
    return unflatten(flatten(held) + dequantise(packed), held)


def compressed_update(update, residual: np.ndarray | None, bits: int):
    """(the update as the server decodes it, its packed Δθ_i, the node's new residual) for a
    :class:`~fedcl.federated.local.LocalUpdate`; its statistics travel as they are."""
    packed, decoded, residual = compress(flatten(update.delta), residual, bits)
    return replace(update, delta=unflatten(decoded, update.delta)), packed, residual
