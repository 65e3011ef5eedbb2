"""SPAKE2 as spec/pairing.md §3 states it, written from that text alone.

A second, deliberately plain implementation (affine Edwards arithmetic, HKDF from
hmac) used by ``generate.py`` to check that the ``spake2`` package (0.9), which
``protocol.pairing`` runs, computes exactly what the spec says before the pairing
vectors are written. Slow (pure Python big integers) and for vectors only: it is
not constant-time and must never run in a node.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1)

Point = tuple[int, int]


def _inv(x: int) -> int:
    return pow(x, P - 2, P)


def _x_for(y: int) -> int:
    """The even x with -x^2 + y^2 = 1 + d x^2 y^2 if there is one (else garbage)."""
    xx = (y * y - 1) * _inv(D * y * y + 1) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * SQRT_M1 % P
    return P - x if x % 2 else x


def on_curve(pt: Point) -> bool:
    x, y = pt
    return (-x * x + y * y - 1 - D * x * x * y * y) % P == 0


def add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * _inv(1 + t) % P, (y1 * y2 + x1 * x2) * _inv(1 - t) % P)


def mul(pt: Point, n: int) -> Point:
    out, addend = IDENTITY, pt
    while n:
        if n & 1:
            out = add(out, addend)
        addend = add(addend, addend)
        n >>= 1
    return out


def encode(pt: Point) -> bytes:
    x, y = pt
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode_element(data: bytes) -> Point:
    """A received element: on the curve, not the identity, in the order-L subgroup."""
    value = int.from_bytes(data, "little")
    y = value & ((1 << 255) - 1)
    x = _x_for(y)
    if (x & 1) != value >> 255:
        x = P - x
    pt = (x % P, y % P)
    if not on_curve(pt):
        raise ValueError("not on the curve")
    if pt == IDENTITY:
        raise ValueError("the identity")
    if mul(pt, L) != IDENTITY:
        raise ValueError("not in the prime-order subgroup")
    return pt


BASE = (_x_for(4 * _inv(5) % P), 4 * _inv(5) % P)


def hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with an empty salt (HMAC pads it to the same key as 32 zero bytes)."""
    prk = hmac.new(b"", ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def password_scalar(password: bytes) -> int:
    return int.from_bytes(hkdf_sha256(password, b"SPAKE2 pw", 48), "big") % L


def arbitrary_element(seed: bytes) -> Point:
    y = int.from_bytes(hkdf_sha256(seed, b"SPAKE2 arbitrary element", 48), "big") % P
    plus = 0
    while True:
        candidate = (_x_for((y + plus) % P), (y + plus) % P)
        plus += 1
        if not on_curve(candidate):
            continue
        element = mul(candidate, 8)
        if element == IDENTITY:
            continue
        assert mul(element, L) == IDENTITY
        return element


M = arbitrary_element(b"M")
N = arbitrary_element(b"N")


def random_scalar(entropy: Callable[[int], bytes]) -> int:
    return int.from_bytes(entropy(64), "big") % L


@dataclass(frozen=True)
class Side:
    """One side's values of a SPAKE2 exchange (for the vectors)."""

    scalar: int
    message: bytes  # side byte + element


def start(side: bytes, password: bytes, entropy: Callable[[int], bytes]) -> Side:
    scalar = random_scalar(entropy)
    blind = M if side == b"A" else N
    element = add(mul(BASE, scalar), mul(blind, password_scalar(password)))
    return Side(scalar, side + encode(element))


def finish(side: bytes, password: bytes, mine: Side, theirs: bytes,
           id_a: bytes, id_b: bytes) -> tuple[bytes, bytes]:
    """(K as bytes, the shared key) for *side* having sent *mine* and received *theirs*."""
    if theirs[:1] not in (b"A", b"B") or theirs[:1] == side:
        raise ValueError("the other side's byte is wrong")
    inbound = decode_element(theirs[1:])
    if encode(inbound) == mine.message[1:]:
        raise ValueError("our own message reflected")
    unblind = N if side == b"A" else M
    k = mul(add(inbound, mul(unblind, (-password_scalar(password)) % L)), mine.scalar % L)
    k_bytes = encode(k)
    ours, other = mine.message[1:], theirs[1:]
    x_msg, y_msg = (ours, other) if side == b"A" else (other, ours)
    sha = hashlib.sha256
    transcript = (sha(password).digest() + sha(id_a).digest() + sha(id_b).digest()
                  + x_msg + y_msg + k_bytes)
    return k_bytes, sha(transcript).digest()
