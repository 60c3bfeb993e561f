# -*- test-case-name: tests.test_proxy_addons -*-
"""One mitmdump-style log line per flow (SPEC §6).

C{flow_detail} 0 (C{-q}) silences flow lines; errors are logged at every detail level.
Lines are logged in this module's namespace, so log observers can pick them out.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.http import HTTPFlow
from twisted_mitm.tcp import TCPFlow

log = Logger()


def pretty_size(size: int) -> str:
    """A byte count the way mitmdump prints it: C{512b}, C{1.5k}, C{3.0m}, C{1.2g}."""
    value = float(size)
    for suffix in ("b", "k", "m", "g"):
        if value < 1024 or suffix == "g":
            return f"{size}b" if suffix == "b" else f"{value:.1f}{suffix}"
        value /= 1024
    raise AssertionError("unreachable")


def client_address(flow: Any) -> str:
    """C{ip:port} of the flow's client, with IPv6 addresses in brackets."""
    host, port = flow.client_conn.peername[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def body_size(flow: HTTPFlow, which: str) -> int:
    """Bytes of the request or response body, counted in transit when it was streamed."""
    message = getattr(flow, which)
    streamed = flow.metadata.get(f"{which}_body_size")
    if streamed is not None:
        return int(streamed)
    return len(message.raw_content or b"")


class FlowLog:
    """Logs a line per completed or failed flow."""

    def __init__(self) -> None:
        self.detail = 1

    def configure(self, updated: set[str]) -> None:
        if "flow_detail" in updated:
            self.detail = ctx.options.flow_detail

    def response(self, flow: HTTPFlow) -> None:
        if self.detail <= 0 or flow.response is None:
            return
        response = flow.response
        streamed = " (streamed)" if response.stream or flow.request.stream else ""
        log.info(
            "{client}: {method} {url} << {status} {reason} {size}{streamed}",
            client=client_address(flow),
            method=flow.request.method,
            url=flow.request.pretty_url,
            status=response.status_code,
            reason=response.reason,
            size=pretty_size(body_size(flow, "response")),
            streamed=streamed,
        )

    def error(self, flow: HTTPFlow) -> None:
        log.warn(
            "{client}: {method} {url} << error: {error}",
            client=client_address(flow),
            method=flow.request.method,
            url=flow.request.pretty_url,
            error=flow.error,
        )

    def tcp_end(self, flow: TCPFlow) -> None:
        if self.detail <= 0:
            return
        host, port = flow.server_conn.address
        log.info(
            "{client}: TCP {host}:{port} {count} messages",
            client=client_address(flow),
            host=host,
            port=port,
            count=len(flow.messages),
        )

    def tcp_error(self, flow: TCPFlow) -> None:
        host, port = flow.server_conn.address
        log.warn("{client}: TCP {host}:{port} << error: {error}", client=client_address(flow), host=host, port=port, error=flow.error)
