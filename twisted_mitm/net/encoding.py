# -*- test-case-name: tests.test_encoding -*-
"""Content-Encoding: undo and apply the content codings mitmproxy handles.

C{identity}, C{gzip}, C{deflate} (zlib-wrapped or raw), C{br} (the C{brotli} package)
and C{zstd} (the C{zstandard} package), plus the aliases C{none}, C{deflateraw} and
C{x-gzip}. A Content-Encoding value may list several codings in the order they were
applied (C{"gzip, br"}): L{encode} applies them in that order and L{decode} undoes them
in reverse. Pure functions on whole bodies; L{twisted_mitm.http.Message} builds
C{content}, C{text}, C{decode()} and C{encode()} on them.

Truncated or corrupt data is an error, never a silently shortened body. Encoders use
fast settings (what a script's C{response.text = ...} pays on the reactor thread).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import brotli  # type: ignore[import-untyped]
import zstandard


class _Codec(NamedTuple):
    decode: Callable[[bytes], bytes]
    encode: Callable[[bytes], bytes]


class _Cached(NamedTuple):
    """The last body coded, both ways: reading C{content} and writing it back unchanged
    then costs no compression and keeps the bytes the server sent."""

    codings: tuple[str, ...]
    encoded: bytes
    decoded: bytes


_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _identity(data: bytes) -> bytes:
    return data


def _members(data: bytes, new_decompressor: Callable[[], Any], magic: bytes, what: str) -> bytes:
    """Decompress one or more concatenated gzip members or zstd frames.

    Bytes after a complete member that do not start with C{magic} are ignored, as
    browsers do; a member cut short is an error.

    @raise ValueError: if a member is truncated.
    """
    pieces = []
    while True:
        decompressor = new_decompressor()
        pieces.append(decompressor.decompress(data))
        if not decompressor.eof:
            raise ValueError(f"truncated {what} data")
        data = decompressor.unused_data
        if not data.startswith(magic):
            return b"".join(pieces)


def _gunzip(data: bytes) -> bytes:
    """gzip, and zlib-wrapped data labelled gzip (zlib's header detection, as mitmproxy)."""
    if not data:
        return b""
    return _members(data, lambda: zlib.decompressobj(32 + zlib.MAX_WBITS), _GZIP_MAGIC, "gzip")


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def _inflate(data: bytes) -> bytes:
    """deflate as the RFC says (zlib-wrapped), or the raw stream some servers send."""
    if not data:
        return b""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 1)


def _unbrotli(data: bytes) -> bytes:
    return brotli.decompress(data) if data else b""


def _brotli(data: bytes) -> bytes:
    return brotli.compress(data, quality=0)


def _unzstd(data: bytes) -> bytes:
    if not data:
        return b""
    return _members(data, zstandard.ZstdDecompressor().decompressobj, _ZSTD_MAGIC, "zstd")


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


_IDENTITY = _Codec(_identity, _identity)
_GZIP = _Codec(_gunzip, _gzip)
_DEFLATE = _Codec(_inflate, _deflate)
_CODECS = {
    "identity": _IDENTITY,
    "none": _IDENTITY,
    "gzip": _GZIP,
    "x-gzip": _GZIP,
    "deflate": _DEFLATE,
    "deflateraw": _DEFLATE,
    "br": _Codec(_unbrotli, _brotli),
    "zstd": _Codec(_unzstd, _zstd),
}
_DECODER_ERRORS = (OSError, EOFError, ValueError, zlib.error, brotli.error, zstandard.ZstdError)

_cache = _Cached((), b"", b"")


def is_supported(coding: str) -> bool:
    """Whether one content coding (C{"br"}, C{"GZIP"}...) can be decoded and encoded."""
    return coding.strip().lower() in _CODECS


def _codings(encoding: str) -> tuple[str, ...]:
    """The codings of a Content-Encoding value, lower case, in the order they were applied.

    @raise ValueError: if one of them is not supported.
    """
    codings = tuple(c for c in (part.strip().lower() for part in encoding.split(",")) if c)
    for coding in codings:
        if coding not in _CODECS:
            raise ValueError(f"unsupported content encoding {coding!r}")
    return codings


def _check_bytes(data: bytes) -> None:
    if not isinstance(data, bytes):
        raise TypeError(f"expected bytes, not {type(data).__name__}")


def _remember(codings: tuple[str, ...], encoded: bytes, decoded: bytes) -> None:
    """Cache a compressed pair; an empty body decodes from b"" but encodes to a stream."""
    global _cache
    if encoded and any(coding not in ("identity", "none") for coding in codings):
        _cache = _Cached(codings, encoded, decoded)


def decode(data: bytes, encoding: str) -> bytes:
    """Undo the Content-Encoding C{encoding} (one coding or a comma-separated list).

    @raise ValueError: for an unsupported coding, or data that does not decode whole.
    """
    _check_bytes(data)
    codings = _codings(encoding)
    cached = _cache
    if cached.codings == codings and cached.encoded == data:
        return cached.decoded
    decoded = data
    for coding in reversed(codings):
        try:
            decoded = _CODECS[coding].decode(decoded)
        except _DECODER_ERRORS as e:
            raise ValueError(f"{coding} content does not decode: {e}") from e
    _remember(codings, data, decoded)
    return decoded


def encode(data: bytes, encoding: str) -> bytes:
    """Apply the Content-Encoding C{encoding} (one coding or a comma-separated list, in order).

    gzip output is deterministic (no timestamp).

    @raise ValueError: for an unsupported coding.
    """
    _check_bytes(data)
    codings = _codings(encoding)
    cached = _cache
    if cached.codings == codings and cached.decoded == data:
        return cached.encoded
    encoded = data
    for coding in codings:
        encoded = _CODECS[coding].encode(encoded)
    _remember(codings, encoded, data)
    return encoded


__all__ = ["decode", "encode", "is_supported"]
