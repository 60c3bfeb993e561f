# -*- test-case-name: tests.test_readfile -*-
"""C{rfile} (C{-r}): run the flows of a mitmproxy flow file through the addons.

Once the proxy is running, each flow of the file gets the hooks it would have raised
live (L{twisted_mitm.master.Master.load_flow}), one flow after the other, as mitmdump
does. Then, as mitmdump does unless C{keepserving} is set, the proxy stops.

A missing or unreadable file, or one that is not a valid flow file, stops start-up with
one line: the whole file is checked when the option is set, before any flow is loaded,
so a file that breaks off halfway does not leave half of it replayed.
"""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.exceptions import FlowReadException, OptionsError
from twisted_mitm.io import FlowReader

log = Logger()


def count_flows(path: str) -> int:
    """Read a whole flow file and count its flows.

    @raise FlowReadException: if it cannot be opened or is not a valid flow file; the
        text names the file and the problem.
    """
    try:
        with open(path, "rb") as file:
            return sum(1 for _ in FlowReader(file).stream())
    except OSError as e:
        raise FlowReadException(f"cannot read {path}: {e.strerror}") from None
    except FlowReadException as e:
        raise FlowReadException(f"{path} is not a valid flow file: {e}") from None


class ReadFile:
    """Loads C{rfile} once the proxy runs.

    @ivar reading: fires once every flow of the file has been through the hooks.
    """

    def __init__(self) -> None:
        self.reading: Deferred[None] | None = None

    def configure(self, updated: set[str]) -> None:
        if "rfile" in updated and ctx.options.rfile:
            try:
                count_flows(os.path.expanduser(ctx.options.rfile))
            except FlowReadException as e:
                raise OptionsError(f"rfile: {e}") from None

    def running(self) -> None:
        if ctx.options.rfile:
            self.reading = Deferred.fromCoroutine(self._load_then_stop(os.path.expanduser(ctx.options.rfile)))

    async def _load_then_stop(self, path: str) -> None:
        try:
            count = await self.load_flows_from_path(path)
        except FlowReadException as e:
            log.error("rfile: {error}", error=e)
        else:
            log.info("rfile: loaded {count} flows from {path}", count=count, path=path)
        if not ctx.options.keepserving:
            ctx.master.shutdown()

    async def load_flows_from_path(self, path: str) -> int:
        """Run each flow of a file through the hooks, one after the other; return how many.

        @raise FlowReadException: if the file cannot be read, after the flows before the
            problem have been loaded.
        """
        count = 0
        try:
            with open(path, "rb") as file:
                for flow in FlowReader(file).stream():
                    await ctx.master.load_flow(flow)
                    count += 1
        except OSError as e:
            raise FlowReadException(f"cannot read {path}: {e.strerror}") from None
        except FlowReadException as e:
            raise FlowReadException(f"{path}: {e} (after {count} flows)") from None
        return count
