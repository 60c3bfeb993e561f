# -*- test-case-name: tests.test_filebody -*-
"""The body of a hook-made response that stays on disk: L{FileBody}, a body source.

A hook (C{map_local}, or a script) that answers a request with a large file sets
C{Response.body_file} instead of C{content}; the exchange then streams the response's
body from this source through the same L{BodyPipe} that carries a server's body, so a
full client pauses the reading of the file exactly as it would pause a server socket,
and memory stays bounded by one read however large the file is.

Twisted's C{FileSender} is a pull producer writing 16 KiB per request; the pipe pauses
and resumes its source like a socket, so this is a push producer instead: it reads one
piece per reactor turn while it is not paused, and stops at the end of the file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.proxy.pipe import TRANSPORT_BUFFER

if TYPE_CHECKING:
    from twisted_mitm.http import Response
    from twisted_mitm.proxy.pipe import BodySink


def made_body_source(response: Response, clock: IReactorTime) -> FileBody | None:
    """The source of a hook-made response's body when it is not in memory, else C{None}.

    @raise ProtocolError: (502) the file cannot be opened any more.
    """
    if response.body_file is None:
        return None
    return FileBody.open(response.body_file, clock)


@implementer(IPushProducer)
class FileBody:
    """Reads a file into a body sink, a piece at a time, as fast as the sink takes it.

    The body is as long as the file was when it was opened: a file that grows meanwhile
    is cut there, one that shrinks fails the body (the client sees a cut connection,
    never a short body that looks complete).

    @ivar framing: the file's size as a Content-Length framing.
    """

    #: bytes read per reactor turn
    piece_size = TRANSPORT_BUFFER

    def __init__(self, file: BinaryIO, size: int, clock: IReactorTime) -> None:
        self.framing = http1.BodyFraming(http1.FramingKind.LENGTH, size)
        self._file = file
        self._remaining = size
        self._clock = clock
        self._sink: BodySink | None = None
        self._paused = False
        self._next: IDelayedCall | None = None

    @classmethod
    def open(cls, path: str, clock: IReactorTime) -> FileBody:
        """Open C{path} for reading; its size now is the body's length.

        @raise ProtocolError: (502) it cannot be opened.
        """
        try:
            file = open(path, "rb")
        except OSError as e:
            raise ProtocolError(502, f"cannot read {path}: {e.strerror or e}") from None
        return cls(file, os.fstat(file.fileno()).st_size, clock)

    # BodySource

    @property
    def producer(self) -> IPushProducer:
        return self

    def hold_body(self) -> None:
        """Nothing is read before L{read_body}."""

    def read_body(self, sink: BodySink) -> None:
        """Start sending the file to C{sink}."""
        self._sink = sink
        self._schedule()

    # Reading

    def _schedule(self) -> None:
        if self._next is None and not self._paused and self._sink is not None and not self._file.closed:
            self._next = self._clock.callLater(0, self._read_piece)

    def _read_piece(self) -> None:
        self._next = None
        assert self._sink is not None
        if not self._remaining:
            self._file.close()
            self._sink.finish(())
            return
        try:
            piece = self._file.read(min(self.piece_size, self._remaining))
        except OSError as e:
            self._fail(f"reading {self._file.name} failed: {e.strerror or e}")
            return
        if not piece:
            self._fail(f"{self._file.name} ended {self._remaining} bytes early")
            return
        self._remaining -= len(piece)
        self._sink.write(http1.Data(piece))
        self._schedule()

    def _fail(self, reason: str) -> None:
        assert self._sink is not None
        self._file.close()
        self._sink.abort(Failure(ProtocolError(502, reason)))

    # IPushProducer, for the pipe

    def pauseProducing(self) -> None:
        self._paused = True
        if self._next is not None:
            self._next.cancel()
            self._next = None

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """The destination is gone, or the exchange gave up: read no more."""
        self.pauseProducing()
        self._file.close()
