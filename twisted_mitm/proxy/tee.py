# -*- test-case-name: tests.test_spool -*-
"""L{TeeWriter}: a body writer that also hands every body byte it writes to a copy.

It wraps the writer that frames a streamed body on its destination, so what is copied
is exactly what went out: after any C{.stream} transform, without the framing. The
copy is called synchronously with each piece and keeps nothing itself, so a stream
costs no more memory with a tee than without (C{store_streamed_bodies} copies into a
L{twisted_mitm.spool.BodySpool}).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IConsumer

from twisted_mitm import http1
from twisted_mitm.proxy.pipe import BodyWriter, Fields


class TeeWriter:
    """Writes through C{writer} and gives each body byte to C{copy} as well."""

    def __init__(self, writer: BodyWriter, copy: Callable[[bytes], None]) -> None:
        self._writer = writer
        self._copy = copy

    @property
    def transport(self) -> IConsumer:
        return self._writer.transport

    def write_piece(self, piece: http1.Data) -> None:
        self._writer.write_piece(piece)
        self._copy(piece.data)

    def write(self, data: bytes) -> None:
        self._writer.write(data)
        self._copy(data)

    def finish(self, trailers: Fields) -> None:
        self._writer.finish(trailers)
