# -*- test-case-name: tests.test_soak -*-
"""Deterministic bodies: the origin, the sink and the clients all derive a body from
C{(seed, size)}, so any side can check what it received by hash.

A body is cut into L{PIECE}-byte pieces. Each piece starts with its seed and index and
goes on with a slice of one shared pseudo-random block, chosen by seed and index: so
pieces of different bodies, or of the same body at different offsets, never look
alike, and a body that was truncated, reordered, duplicated or mixed with another one
gets another digest. Making a body costs a slice per piece, whatever the seed.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator

PIECE = 64 * 1024
_HEADER = struct.Struct(">QQ")
_BLOCK = random.Random("twisted_mitm soak").randbytes((1 << 20) + PIECE)
_SPAN = len(_BLOCK) - PIECE


def pieces(seed: int, size: int) -> Iterator[bytes]:
    """The body for C{(seed, size)}, as pieces of at most L{PIECE} bytes."""
    for index, offset in enumerate(range(0, size, PIECE)):
        length = min(PIECE, size - offset)
        start = (seed * 2654435761 + index * 40503) % _SPAN
        piece = _HEADER.pack(seed, index) + _BLOCK[start : start + PIECE - _HEADER.size]
        yield piece[:length]


def body(seed: int, size: int) -> bytes:
    """The whole body for C{(seed, size)} (for small bodies and WebSocket messages)."""
    return b"".join(pieces(seed, size))


def text(seed: int, size: int) -> str:
    """A C{size}-character ASCII text derived from C{seed} (for WebSocket text messages)."""
    return body(seed, (size + 1) // 2).hex()[:size]


def digest(seed: int, size: int) -> str:
    """The SHA-256 of the body for C{(seed, size)}, in hex."""
    hasher = hashlib.sha256()
    for piece in pieces(seed, size):
        hasher.update(piece)
    return hasher.hexdigest()
