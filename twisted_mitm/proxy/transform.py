# -*- test-case-name: tests.test_transform -*-
"""Adapters that run a message's C{.stream} callable inside a L{BodyPipe}.

Two forms are accepted (SPEC §4):

  - a plain function, called with each chunk and once more with C{b""} at the end,
    returning C{bytes} or an iterable of C{bytes} (mitmproxy 10+): it runs inline, on
    the reactor thread, chunk by chunk (L{ChunkFunctionTransform});
  - a generator function that takes an iterator over all chunks and yields the chunks
    to send (the seed's form). Such a generator pulls its input whenever it likes, and
    a pull cannot be suspended on the reactor thread, so it runs in a thread of its own
    with bounded queues both ways (L{GeneratorTransform}).
"""

from __future__ import annotations

import inspect
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

from twisted_mitm.proxy.pipe import Transform

StreamAttribute = Any


def make_transform(stream: StreamAttribute, reactor: IReactorFromThreads) -> Transform | None:
    """The transform for a message's C{.stream} value, or C{None} to forward bytes untouched."""
    if not callable(stream):
        return None
    if inspect.isgeneratorfunction(stream) or inspect.isgeneratorfunction(getattr(stream, "__call__", None)):
        return GeneratorTransform(stream, reactor)
    return ChunkFunctionTransform(stream)


def _as_chunks(result: bytes | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(result, (bytes, bytearray, memoryview)):
        return (bytes(result),)
    if isinstance(result, str):
        raise TypeError("a stream transform must return bytes, not str")
    return result


class ChunkFunctionTransform:
    """Runs C{func(chunk)} on every chunk and C{func(b"")} at the end, inline."""

    def __init__(self, func: Callable[[bytes], bytes | Iterable[bytes]]) -> None:
        self._func = func
        self._emit: Callable[[bytes], None] = lambda data: None

    def start(
        self, emit: Callable[[bytes], None], set_backlogged: Callable[[bool], None], failed: Callable[[Failure], None]
    ) -> None:
        self._emit = emit

    def feed(self, data: bytes) -> None:
        for chunk in _as_chunks(self._func(data)):
            if chunk:
                self._emit(chunk)

    def end(self, done: Callable[[], None], failed: Callable[[Failure], None]) -> None:
        try:
            self.feed(b"")
        except Exception:
            failed(Failure())
        else:
            done()

    def pause_output(self) -> None:
        """Output is written as it is made; the source is paused instead."""

    def resume_output(self) -> None:
        """See L{pause_output}."""

    def cancel(self) -> None:
        """Nothing runs in the background."""


class _Cancelled(Exception):
    """Raised inside a generator transform whose flow has ended."""


_END = object()
_CANCEL = object()


class GeneratorTransform:
    """Runs a generator transform in its own thread.

    Input: chunks are queued for the thread; once C{max_backlog} chunks wait, the pipe is
    told to pause the source until the thread has caught up by half. Output: the thread
    hands each chunk to the reactor and holds a credit for it; credits come back only
    while the destination is not full, so at most C{max_in_flight} chunks are ever
    waiting on either side.

    The generator may also stop before its input ends (the rest of the input is then
    dropped and the body ends with the input) or raise at any time (the body fails at
    once, without waiting for the input's end).
    """

    max_backlog = 8
    max_in_flight = 8

    def __init__(self, generator_function: Callable[[Iterator[bytes]], Iterable[bytes]], reactor: IReactorFromThreads) -> None:
        self._generator_function = generator_function
        self._reactor = reactor
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._credits = threading.Semaphore(self.max_in_flight)
        self._backlog = 0
        self._backlogged = False
        self._output_paused = False
        self._credits_owed = 0
        self._cancelled = False
        #: the generator has returned: input is dropped, the end is the input's end
        self._exhausted = False
        self._ended = False
        self._emit: Callable[[bytes], None] = lambda data: None
        self._set_backlogged: Callable[[bool], None] = lambda backlogged: None
        self._done: Callable[[], None] = lambda: None
        self._failed: Callable[[Failure], None] = lambda reason: None

    def start(
        self, emit: Callable[[bytes], None], set_backlogged: Callable[[bool], None], failed: Callable[[Failure], None]
    ) -> None:
        self._emit = emit
        self._set_backlogged = set_backlogged
        self._failed = failed
        threading.Thread(target=self._run, name="stream-transform", daemon=True).start()

    def feed(self, data: bytes) -> None:
        if self._exhausted or self._cancelled:
            return
        self._backlog += 1
        self._inbox.put(data)
        if self._backlog >= self.max_backlog and not self._backlogged:
            self._backlogged = True
            self._set_backlogged(True)

    def end(self, done: Callable[[], None], failed: Callable[[Failure], None]) -> None:
        self._ended = True
        self._done = done
        self._failed = failed
        if self._exhausted:
            done()
        else:
            self._inbox.put(_END)

    def pause_output(self) -> None:
        self._output_paused = True

    def resume_output(self) -> None:
        self._output_paused = False
        owed, self._credits_owed = self._credits_owed, 0
        for _ in range(owed):
            self._credits.release()

    def cancel(self) -> None:
        self._cancelled = True
        self._inbox.put(_CANCEL)
        for _ in range(self.max_in_flight + self._credits_owed):
            self._credits.release()

    # Reactor side of the thread's callbacks.

    def _taken(self) -> None:
        self._backlog -= 1
        if self._backlogged and self._backlog <= self.max_backlog // 2:
            self._backlogged = False
            self._set_backlogged(False)

    def _deliver(self, chunk: bytes) -> None:
        if self._cancelled:
            return
        self._emit(chunk)
        if self._output_paused:
            self._credits_owed += 1
        else:
            self._credits.release()

    def _finish(self, reason: Failure | None) -> None:
        if self._cancelled:
            return
        if reason is not None:
            self._cancelled = True
            self._failed(reason)
            return
        self._exhausted = True
        if self._ended:
            self._done()
        elif self._backlogged:
            self._backlogged = False
            self._set_backlogged(False)

    # The transform's own thread.

    def _chunks(self) -> Iterator[bytes]:
        while True:
            item = self._inbox.get()
            if item is _CANCEL:
                raise _Cancelled()
            if item is _END:
                return
            self._reactor.callFromThread(self._taken)
            assert isinstance(item, bytes)
            yield item

    def _run(self) -> None:
        try:
            for chunk in _as_chunks(self._generator_function(self._chunks())):
                if not chunk:
                    continue
                self._credits.acquire()
                if self._cancelled:
                    return
                self._reactor.callFromThread(self._deliver, chunk)
        except _Cancelled:
            return
        except Exception:
            self._reactor.callFromThread(self._finish, Failure())
            return
        self._reactor.callFromThread(self._finish, None)
