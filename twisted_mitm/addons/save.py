# -*- test-case-name: tests.test_save -*-
"""C{save_stream_file} (C{-w}): write flows to a mitmproxy flow file as they end.

As mitmproxy's C{save} addon: an HTTP flow is written at C{response} or C{error}, a
WebSocket flow at C{websocket_end}, a TCP flow at C{tcp_end}/C{tcp_error}; flows still
open when the proxy stops are written as they are. A leading C{+} appends to the file;
the path may hold strftime() codes, and a new file starts whenever the formatted name
changes. Files this addon creates are readable by their owner only (mode 0600): they
hold whole requests, cookies and passwords included.

C{save.file} is also a command: C{ctx.master.commands.call("save.file", flows, path)}.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from twisted.logger import Logger

from twisted_mitm import ctx, flowfilter
from twisted_mitm.addonmanager import Loader
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.http import HTTPFlow
from twisted_mitm.io import FilteredFlowWriter, FlowFilter, FlowWriter
from twisted_mitm.master import CommandError
from twisted_mitm.tcp import TCPFlow

log = Logger()

FILE_MODE = 0o600
"""The permissions of the flow files this addon creates."""


def save_filter(expression: str | None) -> FlowFilter | None:
    """The filter C{save_stream_filter} names (checked when the option was set); C{None} saves every flow."""
    return flowfilter.parse(expression) if expression else None


def split_path(spec: str) -> tuple[str, bool]:
    """C{(path, append)} of a path spec: a leading C{+} means append; C{~} is expanded."""
    append = spec.startswith("+")
    return os.path.expanduser(spec[1:] if append else spec), append


def open_flow_file(path: str, append: bool) -> BinaryIO:
    """Open C{path} for writing flows, creating it (and its folder) owner-only if missing.

    @raise OSError: if it cannot be opened.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), "ab" if append else "wb")


def upgrades_to_websocket(flow: HTTPFlow) -> bool:
    """Whether the flow's response switches the connection to WebSocket."""
    response = flow.response
    return response is not None and response.status_code == 101 and response.headers.get("upgrade", "").lower() == "websocket"


def cannot_write(path: str, error: OSError) -> str:
    """What went wrong writing C{path}, naming the file the system refused if another one."""
    where = f" ({error.filename})" if error.filename and error.filename != path else ""
    return f"cannot write {path}: {error.strerror}{where}"


class Save:
    """Streams ending flows to C{save_stream_file}; also the C{save.file} command.

    @ivar active_flows: flows seen starting and not written yet; written at C{done}.
    @ivar current_path: the file being written, after strftime() formatting.
    """

    def __init__(self) -> None:
        self.writer: FilteredFlowWriter | None = None
        self.filter: FlowFilter | None = None
        self.current_path: str | None = None
        self.active_flows: set[Flow] = set()

    def load(self, loader: Loader) -> None:
        loader.add_command("save.file", self.save)

    def configure(self, updated: set[str]) -> None:
        if "save_stream_filter" in updated:
            self.filter = save_filter(ctx.options.save_stream_filter)
            if self.writer is not None:
                self.writer.flt = self.filter
        if "save_stream_file" in updated:
            if ctx.options.save_stream_file:
                try:
                    self._follow_path()
                except OSError as e:
                    raise OptionsError(f"save_stream_file: {cannot_write(self._target()[0], e)}") from None
            else:
                self.done()

    def _target(self) -> tuple[str, bool]:
        """The file the option names now (strftime() codes filled in), and whether to append."""
        spec, append = split_path(ctx.options.save_stream_file)
        return datetime.datetime.now().strftime(spec), append

    def _follow_path(self) -> None:
        """Switch to the file the option names now, if it is not the one being written."""
        path, append = self._target()
        if path == self.current_path:
            return
        self._close()
        self.writer = FilteredFlowWriter(open_flow_file(path, append), self.filter)
        self.current_path = path

    def _close(self) -> None:
        writer, self.writer, self.current_path = self.writer, None, None
        if writer is not None:
            writer.fo.close()

    def _abandon(self) -> None:
        """Drop a file that failed: what its buffer still holds cannot be written either."""
        with contextlib.suppress(OSError):
            self._close()

    def save_flow(self, flow: Flow) -> None:
        """Write a flow that has ended, to the file its end time's name gives."""
        self.active_flows.discard(flow)
        if self.writer is None:
            return
        try:
            self._follow_path()
            assert self.writer is not None
            self.writer.add(flow)
        except OSError as e:
            # mitmproxy stops rather than let traffic through unrecorded; so do we.
            log.critical("save_stream_file: {problem}; stopping the proxy", problem=cannot_write(self._target()[0], e))
            self._abandon()
            ctx.master.shutdown()
        except ValueError as e:
            log.error("save_stream_file: flow {id} not saved: {error}", id=flow.id, error=e)

    def done(self) -> None:
        """Write the flows that have not ended, and close the file."""
        if self.writer is None:
            return
        for flow in list(self.active_flows):
            self.save_flow(flow)
        self.active_flows.clear()
        self._close()

    def save(self, flows: Sequence[Flow], path: str) -> None:
        """The C{save.file} command: write C{flows} to C{path}; a leading C{+} appends.

        @raise CommandError: if the file cannot be written.
        """
        file_path, append = split_path(path)
        try:
            with open_flow_file(file_path, append) as file:
                writer = FlowWriter(file)
                for flow in flows:
                    writer.add(flow)
        except OSError as e:
            raise CommandError(f"save.file: {cannot_write(file_path, e)}") from None
        log.info("Saved {count} flows to {path}.", count=len(flows), path=file_path)

    # Flows start...

    def request(self, flow: HTTPFlow) -> None:
        if self.writer is not None:
            self.active_flows.add(flow)

    def tcp_start(self, flow: TCPFlow) -> None:
        if self.writer is not None:
            self.active_flows.add(flow)

    # ...and end.

    def response(self, flow: HTTPFlow) -> None:
        # A WebSocket flow is written at websocket_end. mitmproxy sets flow.websocket before
        # this hook; the proxy here sets it after, so the 101 is also known by its headers.
        if flow.websocket is None and not upgrades_to_websocket(flow):
            self.save_flow(flow)

    def error(self, flow: HTTPFlow) -> None:
        if flow.websocket is None:
            self.save_flow(flow)

    def websocket_end(self, flow: HTTPFlow) -> None:
        self.save_flow(flow)

    def tcp_end(self, flow: TCPFlow) -> None:
        self.save_flow(flow)

    def tcp_error(self, flow: TCPFlow) -> None:
        self.save_flow(flow)
