# -*- test-case-name: tests.test_spool -*-
"""Bodies kept on disk instead of in memory (C{store_streamed_bodies}).

A L{SpoolDirectory} is the private temporary folder of one proxy; a L{BodySpool} is one
body being written there as it streams past; once the body ended it becomes a
L{SpooledBody}, the value a message holds in place of its C{bytes}. The message reads
it back only when asked (C{message.content}); the flow file writer copies it from disk
a piece at a time (L{twisted_mitm.io.tnetstring}). The file is deleted when the last
message holding it is freed, or with the whole folder when the proxy stops.

Pure: files and the standard library only, no reactor.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator

#: Bytes read from a spool file at a time when it is copied elsewhere.
READ_SIZE = 256 * 1024


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class SpooledBody:
    """A whole body held in a file: as good as C{bytes} to whoever reads it.

    @ivar path: the file (mode 0600), deleted when this object is freed.
    @ivar size: its length in bytes.
    """

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self._deleter = weakref.finalize(self, _unlink, path)

    def __repr__(self) -> str:
        return f"<SpooledBody {self.size} bytes in {self.path}>"

    def __len__(self) -> int:
        return self.size

    def read(self) -> bytes:
        """The whole body, read into memory."""
        with open(self.path, "rb") as file:
            return file.read()

    def chunks(self) -> Iterator[bytes]:
        """The body a piece at a time, never more than L{READ_SIZE} bytes in memory.

        @raise ValueError: the file no longer has the body's size.
        """
        remaining = self.size
        with open(self.path, "rb") as file:
            while remaining:
                piece = file.read(min(READ_SIZE, remaining))
                if not piece:
                    raise ValueError(f"{self.path} ended {remaining} bytes short of its body")
                remaining -= len(piece)
                yield piece


class BodySpool:
    """One body being written to a file of a L{SpoolDirectory} as it passes."""

    def __init__(self, directory: str) -> None:
        descriptor, self.path = tempfile.mkstemp(prefix="body-", dir=directory)
        self._file = os.fdopen(descriptor, "wb")
        self._size = 0

    def write(self, data: bytes) -> None:
        """Append C{data}."""
        self._file.write(data)
        self._size += len(data)

    def close(self) -> SpooledBody:
        """The body ended: the L{SpooledBody} that now owns the file."""
        self._file.close()
        return SpooledBody(self.path, self._size)

    def discard(self) -> None:
        """The body failed: forget it and its file."""
        self._file.close()
        _unlink(self.path)


class SpoolDirectory:
    """The private folder (mode 0700, made on first use) that one proxy's spools live in."""

    def __init__(self) -> None:
        self._path: str | None = None

    def new_spool(self) -> BodySpool:
        """A spool for one more body."""
        if self._path is None:
            self._path = tempfile.mkdtemp(prefix="twisted_mitm_bodies_")
        return BodySpool(self._path)

    def remove(self) -> None:
        """Delete the folder with every spool file left in it (the proxy stops)."""
        path, self._path = self._path, None
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
