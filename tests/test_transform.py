# -*- test-case-name: tests.test_transform -*-
"""The adapters that run C{.stream} callables (SPEC §4): both forms, flow control, failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support import reactor, wait_until
from twisted_mitm.proxy.transform import ChunkFunctionTransform, GeneratorTransform, make_transform


class Outcome:
    """Collects what a transform emits and how it ends."""

    def __init__(self) -> None:
        self.emitted: list[bytes] = []
        self.backlogged: list[bool] = []
        self.done = False
        self.failures: list[Failure] = []

    def start(self, transform: ChunkFunctionTransform | GeneratorTransform) -> None:
        transform.start(self.emitted.append, self.backlogged.append, self.failures.append)

    def end(self, transform: ChunkFunctionTransform | GeneratorTransform) -> None:
        transform.end(self.finished, self.failures.append)

    def finished(self) -> None:
        self.done = True


def upper(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for piece in chunks:
        yield piece.upper()


class MakeTransformTests(TestCase):
    """C{make_transform} picks the adapter for a C{.stream} value."""

    def test_flags_forward_untouched(self) -> None:
        """True and False need no transform."""
        self.assertIsNone(make_transform(True, reactor))
        self.assertIsNone(make_transform(False, reactor))

    def test_forms(self) -> None:
        """Generator functions (and objects whose __call__ is one) run in a thread; other callables per chunk."""

        class Callable:
            def __call__(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
                yield from chunks

        self.assertIsInstance(make_transform(upper, reactor), GeneratorTransform)
        self.assertIsInstance(make_transform(Callable(), reactor), GeneratorTransform)
        self.assertIsInstance(make_transform(bytes.upper, reactor), ChunkFunctionTransform)
        self.assertIsInstance(make_transform(lambda data: data, reactor), ChunkFunctionTransform)


class ChunkFunctionTransformTests(TestCase):
    """A plain function is called inline with each chunk and with b"" at the end."""

    def test_bytes_and_iterables(self) -> None:
        """Results may be bytes or iterables of bytes; empty pieces are dropped; b"" comes last."""
        calls: list[bytes] = []

        def function(data: bytes) -> bytes | list[bytes]:
            calls.append(data)
            return [data, b"", b";"] if data else b"end"

        transform, outcome = ChunkFunctionTransform(function), Outcome()
        outcome.start(transform)
        transform.feed(b"a")
        transform.feed(b"b")
        outcome.end(transform)
        self.assertEqual(calls, [b"a", b"b", b""])
        self.assertEqual(outcome.emitted, [b"a", b";", b"b", b";", b"end"])
        self.assertTrue(outcome.done)

    def test_str_is_refused(self) -> None:
        """Returning str instead of bytes is an error."""
        transform = ChunkFunctionTransform(lambda data: "text")
        Outcome().start(transform)
        self.assertRaises(TypeError, transform.feed, b"x")

    def test_failure_at_the_end(self) -> None:
        """An exception in the final b"" call is reported as a failure, not as the end."""

        def function(data: bytes) -> bytes:
            if not data:
                raise ValueError("no end for you")
            return data

        transform, outcome = ChunkFunctionTransform(function), Outcome()
        outcome.start(transform)
        outcome.end(transform)
        self.assertFalse(outcome.done)
        self.assertTrue(outcome.failures[0].check(ValueError))


class GeneratorTransformTests(TestCase):
    """A generator function runs in its own thread with bounded queues both ways."""

    def _start(self, function: object) -> tuple[GeneratorTransform, Outcome]:
        transform, outcome = GeneratorTransform(function, reactor), Outcome()  # type: ignore[arg-type]
        outcome.start(transform)
        self.addCleanup(transform.cancel)
        return transform, outcome

    async def test_transforms_in_order(self) -> None:
        """Chunks come out transformed, in order, and the end follows the last one."""
        transform, outcome = self._start(upper)
        for piece in (b"a", b"b", b"c"):
            transform.feed(piece)
        outcome.end(transform)
        await wait_until(lambda: outcome.done, what="the end")
        self.assertEqual(outcome.emitted, [b"A", b"B", b"C"])

    async def test_input_backlog_is_bounded(self) -> None:
        """Once max_backlog chunks wait for a slow generator it asks for the source to pause, and to resume once drained."""
        gate = threading.Event()

        def slow(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for piece in chunks:
                gate.wait(5)
                yield piece

        transform, outcome = self._start(slow)
        for _ in range(GeneratorTransform.max_backlog):
            transform.feed(b"x")
        self.assertEqual(outcome.backlogged, [True])
        gate.set()
        await wait_until(lambda: outcome.backlogged == [True, False], what="the backlog to drain")
        outcome.end(transform)
        await wait_until(lambda: outcome.done, what="the end")
        self.assertEqual(len(outcome.emitted), GeneratorTransform.max_backlog)

    async def test_output_waits_for_a_paused_destination(self) -> None:
        """While the destination is paused at most max_in_flight chunks are emitted; resuming lets the rest out."""

        def many(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for piece in chunks:
                for _ in range(50):
                    yield piece

        transform, outcome = self._start(many)
        transform.pause_output()
        transform.feed(b"y")
        await wait_until(lambda: len(outcome.emitted) == GeneratorTransform.max_in_flight, what="the in-flight chunks")
        await wait_until(lambda: True)
        self.assertEqual(len(outcome.emitted), GeneratorTransform.max_in_flight)
        transform.resume_output()
        outcome.end(transform)
        await wait_until(lambda: outcome.done, what="the end")
        self.assertEqual(len(outcome.emitted), 50)

    async def test_failure_before_the_input_ends(self) -> None:
        """A generator that raises while the body is still arriving fails the flow at once."""

        def broken(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for piece in chunks:
                raise ValueError("broken " + piece.decode())
            yield b""

        transform, outcome = self._start(broken)
        transform.feed(b"early")
        await wait_until(lambda: outcome.failures, what="the failure")
        self.assertIn("broken early", outcome.failures[0].getErrorMessage())
        for _ in range(GeneratorTransform.max_backlog * 2):
            transform.feed(b"ignored")
        self.assertNotIn(True, outcome.backlogged)
        outcome.end(transform)
        self.assertFalse(outcome.done)
        self.assertEqual(len(outcome.failures), 1)

    async def test_generator_that_stops_early(self) -> None:
        """A generator that returns before reading all input ends the body; the rest of the input is dropped."""

        def first_only(chunks: Iterator[bytes]) -> Iterator[bytes]:
            yield next(chunks)

        transform, outcome = self._start(first_only)
        transform.feed(b"first")
        await wait_until(lambda: outcome.emitted == [b"first"], what="the first chunk")
        await wait_until(lambda: True)
        for _ in range(GeneratorTransform.max_backlog * 2):
            transform.feed(b"dropped")
        self.assertNotIn(True, outcome.backlogged)
        outcome.end(transform)
        await wait_until(lambda: outcome.done, what="the end")
        self.assertEqual(outcome.emitted, [b"first"])

    async def test_cancel_ends_the_thread(self) -> None:
        """Cancelling a transform blocked on its input or output lets its thread end."""
        transform, outcome = self._start(upper)
        transform.pause_output()
        before = threading.active_count()
        transform.cancel()
        await wait_until(lambda: threading.active_count() < before, what="the thread to end")
        self.assertFalse(outcome.done)
        self.assertEqual(outcome.failures, [])
