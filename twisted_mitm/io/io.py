# -*- test-case-name: tests.test_io -*-
"""Reading and writing flow files in mitmproxy 12's format.

A flow file is a sequence of tnetstrings (L{twisted_mitm.io.tnetstring}), one flow state
(L{twisted_mitm.flow.Flow.get_state}) each, one after the other; appending to a file
appends flows. L{FlowReader} migrates older format versions (L{compat}) and builds the
flows; L{FlowWriter} writes the current version.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from twisted_mitm import http, tcp  # noqa: F401  (registers the http and tcp flow types)
from twisted_mitm.exceptions import FlowReadException
from twisted_mitm.flow import Flow
from twisted_mitm.io.compat import migrate_flow
from twisted_mitm.io.tnetstring import EndOfInput, dump, load

FlowFilter = Callable[[Flow], bool]
"""A parsed filter expression: C{True} for the flows it matches."""


class FlowWriter:
    """Writes flows to a binary file, each as it is added."""

    def __init__(self, fo: BinaryIO) -> None:
        self.fo = fo

    def add(self, flow: Flow) -> None:
        """Write C{flow}'s current state.

        @raise ValueError: if the flow holds a value that cannot be saved (say, an
            object in C{flow.metadata}); nothing is written then.
        """
        dump(flow.get_state(), self.fo)


class FilteredFlowWriter(FlowWriter):
    """Writes the flows a filter matches (all without a filter), flushing after each."""

    def __init__(self, fo: BinaryIO, flt: FlowFilter | None) -> None:
        super().__init__(fo)
        self.flt = flt

    def add(self, flow: Flow) -> None:
        if self.flt is not None and not self.flt(flow):
            return
        super().add(flow)
        self.fo.flush()


class FlowReader:
    """Reads the flows of a binary file, one at a time."""

    def __init__(self, fo: BinaryIO) -> None:
        self.fo = fo

    def stream(self) -> Iterator[Flow]:
        """Yield the flows in file order; only one is held in memory at a time.

        @raise FlowReadException: at the first thing that is not a readable flow, with
            what was wrong; the flows before it have been yielded.
        """
        if self._peek(4).removeprefix(b"\xef\xbb\xbf").startswith(b"{"):
            raise FlowReadException("this is a JSON file (HAR?), not a mitmproxy flow file")
        count = 0
        while True:
            try:
                state = load(self.fo)
            except EndOfInput:
                return
            except (ValueError, RecursionError) as e:
                raise FlowReadException(_not_a_flow(count, str(e) or type(e).__name__)) from None
            yield _flow_from(state, count)
            count += 1

    def _peek(self, size: int) -> bytes:
        """The next C{size} bytes, left unread."""
        peek = getattr(self.fo, "peek", None)
        if peek is not None:
            return bytes(peek(size)[:size])
        position = self.fo.tell()
        data = self.fo.read(size)
        self.fo.seek(position)
        return data


def read_flows_from_paths(paths: Iterable[str]) -> list[Flow]:
    """All the flows of several flow files, in order (C{~} expanded in each path).

    @raise FlowReadException: naming the file that cannot be read, and why.
    """
    flows: list[Flow] = []
    for path in paths:
        path = os.path.expanduser(path)
        try:
            with open(path, "rb") as file:
                flows.extend(FlowReader(file).stream())
        except OSError as e:
            raise FlowReadException(f"cannot read {path}: {e.strerror}") from None
        except FlowReadException as e:
            raise FlowReadException(f"{path} is not a valid flow file: {e}") from None
    return flows


def _flow_from(state: object, index: int) -> Flow:
    """The flow of a loaded state, migrated to the current version."""
    if not isinstance(state, dict):
        raise FlowReadException(_not_a_flow(index, f"expected a flow, found a {type(state).__name__}"))
    try:
        return Flow.from_state(migrate_flow(state))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise FlowReadException(_not_a_flow(index, str(e))) from None


def _not_a_flow(index: int, reason: str) -> str:
    return f"flow {index + 1}: {reason}"
