# -*- test-case-name: tests.test_builtin_addons -*-
"""Refuse HTTP/2 over cleartext (mitmproxy's C{disable_h2c} addon).

A client may ask to switch a plain HTTP/1.1 connection to HTTP/2 (C{Upgrade: h2c}).
If the server agreed, it would start speaking HTTP/2 frames to a proxy that reads
HTTP/1, so the offer is taken out of the request before it goes upstream: the server
answers in HTTP/1.1 and nothing breaks. (HTTP/2 inside TLS is negotiated with ALPN,
which this does not touch.)
"""

from __future__ import annotations

from twisted.logger import Logger

from twisted_mitm import http1
from twisted_mitm.http import Headers, HTTPFlow

_log = Logger()


def _remove_tokens(headers: Headers, name: str, unwanted: set[bytes]) -> None:
    """Drop C{unwanted} tokens from the C{name} fields; the fields go if nothing is left."""
    kept = [token for token in http1.field_elements(headers.fields, name.encode()) if token.lower() not in unwanted]
    if kept:
        headers[name] = b", ".join(kept).decode("latin-1")
    elif name in headers:
        del headers[name]


class DisableH2C:
    """Removes an C{h2c} upgrade offer (and its C{HTTP2-Settings}) from every request."""

    def requestheaders(self, flow: HTTPFlow) -> None:
        self._strip_h2c(flow)

    def request(self, flow: HTTPFlow) -> None:
        self._strip_h2c(flow)

    def _strip_h2c(self, flow: HTTPFlow) -> None:
        headers = flow.request.headers
        if "upgrade" not in headers or b"h2c" not in http1.field_tokens(headers.fields, b"upgrade"):
            return
        _log.info("{url}: HTTP/2 over cleartext (Upgrade: h2c) is not supported; the offer was removed", url=flow.request.pretty_url)
        _remove_tokens(headers, "upgrade", {b"h2c"})
        if "http2-settings" in headers:
            del headers["http2-settings"]
        unwanted = {b"http2-settings"} if "upgrade" in headers else {b"http2-settings", b"upgrade"}
        _remove_tokens(headers, "connection", unwanted)
