# -*- test-case-name: tests.test_flowlog -*-
"""The flow log: what mitmdump prints, as log events (SPEC §6).

C{flow_detail} sets how much: 0 nothing but errors, 1 one line per flow (and per
WebSocket or TCP message), 2 the headers too, 3 bodies cut after
C{content_view_lines_cutoff} lines (binary ones summarised), 4 whole bodies (binary ones
as a hex dump). C{dumper_filter} limits which flows are logged, errors included.

Each HTTP flow is one event, logged when it has ended, so that the lines of flows that
overlap never interleave. Events are logged in this module's namespace, so log
observers can pick them out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from twisted.logger import Logger

from twisted_mitm import ctx, flowfilter
from twisted_mitm.http import Headers, HTTPFlow, Message
from twisted_mitm.tcp import TCPFlow
from twisted_mitm.utils.strutils import bytes_to_escaped_str, escape_control_characters, is_mostly_bin

log = Logger()

_INDENT = "    "
# WebSocket close codes that end a connection normally, and the names of the others
# (RFC 6455 section 7.4.1, with wsproto's names as mitmdump prints them).
_NORMAL_CLOSE_CODES = {1000, 1001, 1005}
_CLOSE_CODE_NAMES = {
    1002: "PROTOCOL_ERROR",
    1003: "UNSUPPORTED_DATA",
    1006: "ABNORMAL_CLOSURE",
    1007: "INVALID_FRAME_PAYLOAD_DATA",
    1008: "POLICY_VIOLATION",
    1009: "MESSAGE_TOO_BIG",
    1010: "MANDATORY_EXT",
    1011: "INTERNAL_ERROR",
    1012: "SERVICE_RESTART",
    1013: "TRY_AGAIN_LATER",
    1015: "TLS_HANDSHAKE_FAILED",
}


def pretty_size(size: int) -> str:
    """A byte count the way mitmdump prints it, in at most five characters: C{512b},
    C{1.5k}, C{150k}, C{3.0m}."""
    if size < 1024:
        return f"{size}b"
    value = float(size)
    for suffix in ("k", "m", "g", "t"):
        value /= 1024
        if value < 99.95:
            return f"{value:.1f}{suffix}"
        if value < 1024 or suffix == "t":
            return f"{value:.0f}{suffix}"
    raise AssertionError("unreachable")


def format_address(address: tuple[str, int] | None) -> str:
    """C{host:port} as mitmdump prints it: IPv6 in brackets, IPv4-mapped IPv6 as IPv4."""
    if address is None:
        return "<no address>"
    host, port = address[:2]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    if ip.is_unspecified:
        return f"*:{port}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is None:
            return f"[{ip}]:{port}"
        ip = ip.ipv4_mapped
    return f"{ip}:{port}"


def body_size(flow: HTTPFlow, which: str) -> int:
    """Bytes of the request or response body, counted in transit when it was streamed."""
    message = getattr(flow, which)
    streamed = flow.metadata.get(f"{which}_body_size")
    if streamed is not None:
        return int(streamed)
    return len(message.raw_content or b"")


def hexdump(data: bytes) -> Iterator[str]:
    """Lines of offset, 16 bytes in hex, and the same bytes as ASCII (dots elsewhere)."""
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        text = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        yield f"{offset:08x}  {chunk.hex(' '):<47}  {text}"


class FlowLog:
    """Logs flows like mitmdump; see the module docstring for what each level adds."""

    def __init__(self) -> None:
        self.detail = 1
        self.cutoff = 512
        self.filter: flowfilter.Filter | None = None

    def configure(self, updated: set[str]) -> None:
        if "flow_detail" in updated:
            self.detail = ctx.options.flow_detail
        if "content_view_lines_cutoff" in updated:
            self.cutoff = ctx.options.content_view_lines_cutoff
        if "dumper_filter" in updated:
            expression = ctx.options.dumper_filter
            self.filter = flowfilter.parse(expression) if expression else None

    def selected(self, flow: Any) -> bool:
        """Whether C{dumper_filter} lets the flow be logged."""
        return self.filter is None or self.filter(flow)

    def shown(self, flow: Any) -> bool:
        """Whether the flow's ordinary lines are logged (errors are at every detail level)."""
        return self.detail > 0 and self.selected(flow)

    # HTTP

    def response(self, flow: HTTPFlow) -> None:
        if flow.response is None or not self.shown(flow):
            return
        request, response = flow.request, flow.response
        log.info(
            "{client}: {method} {url}{request_version}{request_details}"
            "{separator}{replay}<< {response_version}{status} {reason} {size}{streamed}{response_details}",
            client=self.client(flow),
            method=escape_control_characters(request.method),
            url=escape_control_characters(request.pretty_url),
            request_version=_request_version(flow),
            request_details=self.message_details(flow, request, "request"),
            separator=self.separator(),
            replay="[replay] " if flow.is_replay == "response" else "",
            response_version=_response_version(flow),
            status=response.status_code,
            reason=escape_control_characters(response.reason),
            size=pretty_size(body_size(flow, "response")),
            streamed=" (streamed)" if response.stream or request.stream else "",
            response_details=self.message_details(flow, response, "response").rstrip("\n"),
        )

    def error(self, flow: HTTPFlow) -> None:
        if not self.selected(flow):
            return
        log.warn(
            "{client}: {method} {url}{request_version}{request_details}{separator}<< error: {error}",
            client=self.client(flow),
            method=escape_control_characters(flow.request.method),
            url=escape_control_characters(flow.request.pretty_url),
            request_version=_request_version(flow),
            request_details=self.message_details(flow, flow.request, "request"),
            separator=self.separator(),
            error=escape_control_characters(str(flow.error)),
        )

    def client(self, flow: Any) -> str:
        """The client's address, or C{[replay]} for a replayed request."""
        if flow.is_replay == "request":
            return "[replay]"
        return format_address(flow.client_conn.peername)

    def separator(self) -> str:
        """What comes before C{<<}: a space on the flow's one line, else a new line."""
        return " " if self.detail < 2 else "\n "

    def message_details(self, flow: HTTPFlow, message: Message, which: str) -> str:
        """The lines that follow a request or response line at detail 2 and up."""
        if self.detail < 2:
            return ""
        lines = _header_lines(message.headers)
        if self.detail >= 3:
            lines += self.body_lines(flow, message, which)
        if message.trailers:
            lines += [f"{_INDENT}--- HTTP Trailers", *_header_lines(message.trailers)]
        return _continued(lines)

    def body_lines(self, flow: HTTPFlow, message: Message, which: str) -> list[str]:
        """A blank line, the body, a blank line (mitmdump's layout)."""
        if message.stream:
            shown = [f"(streamed, not recorded: {pretty_size(body_size(flow, which))})"]
        else:
            content = message.get_content(strict=False)
            if content is None:
                shown = ["(content missing)"]
            elif is_mostly_bin(content):
                shown = self.binary_lines(content)
            else:
                shown = self.text_lines(message.get_text(strict=False) or "")
        return ["", *_indented(shown), ""] if shown else [""]

    def content_lines(self, content: bytes, is_text: bool) -> str:
        """A WebSocket or TCP message's content at detail 3 and up, after a blank line."""
        if self.detail < 3 or not content:
            return ""
        if not is_text and is_mostly_bin(content):
            shown = self.binary_lines(content)
        else:
            shown = self.text_lines(content.decode("utf-8", "backslashreplace"))
        return _continued(["", *_indented(shown)])

    def binary_lines(self, content: bytes) -> list[str]:
        """A one-line summary at detail 3, a hex dump of everything at 4."""
        if self.detail < 4:
            return [f"(binary content: {pretty_size(len(content))})"]
        return list(hexdump(content))

    def text_lines(self, text: str) -> list[str]:
        """The text's lines, cut after C{content_view_lines_cutoff} at detail 3."""
        lines = escape_control_characters(text).splitlines()
        if self.detail < 4 and len(lines) > self.cutoff:
            return [*lines[: self.cutoff], "(cut off)"]
        return lines

    # WebSocket

    def websocket_message(self, flow: HTTPFlow) -> None:
        if flow.websocket is None or not self.shown(flow):
            return
        message = flow.websocket.messages[-1]
        direction = "->" if message.from_client else "<-"
        log.info(
            "{client} {direction} WebSocket {kind} message {direction} {server}{path}{content}",
            client=format_address(flow.client_conn.peername),
            direction=direction,
            kind=message.type.name.lower(),
            server=format_address(flow.server_conn.address),
            path=escape_control_characters(flow.request.path),
            content=self.content_lines(message.content, message.is_text),
        )

    def websocket_end(self, flow: HTTPFlow) -> None:
        websocket = flow.websocket
        if websocket is None or not self.selected(flow):
            return
        if websocket.close_code in _NORMAL_CLOSE_CODES:
            if self.detail > 0:
                log.info(
                    "WebSocket connection closed by {side}: {code} {reason}",
                    side="client" if websocket.closed_by_client else "server",
                    code=websocket.close_code,
                    reason=escape_control_characters(websocket.close_reason or ""),
                )
            return
        log.warn(
            "Error in WebSocket connection to {server}: WebSocket Error: {code_name}{reason}",
            server=format_address(flow.server_conn.address),
            code_name=_CLOSE_CODE_NAMES.get(websocket.close_code or 0, f"UNKNOWN_ERROR={websocket.close_code}"),
            reason=f" (reason: {escape_control_characters(websocket.close_reason)})" if websocket.close_reason else "",
        )

    # TCP

    def tcp_message(self, flow: TCPFlow) -> None:
        if not self.shown(flow):
            return
        message = flow.messages[-1]
        direction = "->" if message.from_client else "<-"
        log.info(
            "{client} {direction} tcp {direction} {server}{content}",
            client=format_address(flow.client_conn.peername),
            direction=direction,
            server=format_address(flow.server_conn.address),
            content=self.content_lines(message.content, False),
        )

    def tcp_end(self, flow: TCPFlow) -> None:
        if not self.shown(flow):
            return
        log.info(
            "{client}: TCP {server} {count} messages",
            client=format_address(flow.client_conn.peername),
            server=format_address(flow.server_conn.address),
            count=len(flow.messages),
        )

    def tcp_error(self, flow: TCPFlow) -> None:
        if not self.selected(flow):
            return
        log.warn(
            "{client}: TCP {server} << error: {error}",
            client=format_address(flow.client_conn.peername),
            server=format_address(flow.server_conn.address),
            error=escape_control_characters(str(flow.error)),
        )


def _header_lines(headers: Headers) -> list[str]:
    return [f"{_INDENT}{bytes_to_escaped_str(name)}: {bytes_to_escaped_str(value)}" for name, value in headers.fields]


def _continued(lines: list[str]) -> str:
    """Lines to append to an event's first line."""
    return "".join(f"\n{line}" for line in lines)


def _indented(lines: list[str]) -> list[str]:
    return [f"{_INDENT}{line}" if line else "" for line in lines]


def _request_version(flow: HTTPFlow) -> str:
    """C{" HTTP/1.0"} after the URL, unless both sides spoke the same HTTP/1 (as mitmdump)."""
    request = flow.request
    response_version = flow.response.http_version if flow.response is not None else "HTTP/1.1"
    if (request.is_http10 or request.is_http11) and request.http_version == response_version:
        return ""
    return f" {escape_control_characters(request.http_version)}"


def _response_version(flow: HTTPFlow) -> str:
    """C{"HTTP/1.0 "} before the status, unless both sides spoke the same HTTP/1."""
    response = flow.response
    assert response is not None
    if (response.is_http10 or response.is_http11) and flow.request.http_version == response.http_version:
        return ""
    return f"{escape_control_characters(response.http_version)} "
