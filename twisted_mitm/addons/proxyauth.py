# -*- test-case-name: tests.test_builtin_addons -*-
"""C{proxyauth=user:pass}: clients must authenticate to the proxy with Basic credentials.

A client authenticates once per connection: on its CONNECT, or on each plain request
it sends. Requests inside an authenticated tunnel are not asked again. A missing or
wrong C{Proxy-Authorization} is answered with 407 and a C{Proxy-Authenticate}
challenge; the header itself is never forwarded upstream.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from twisted_mitm import ctx
from twisted_mitm.connection import Client
from twisted_mitm.http import HTTPFlow, Response

REALM = "twisted_mitm"


def credentials_from(header: str) -> str | None:
    """C{user:pass} from a C{Basic} authorization header, or C{None}."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


class ProxyAuth:
    """Answers unauthenticated clients with 407 when C{proxyauth} is set."""

    def __init__(self) -> None:
        self.expected: str | None = None
        self.authenticated: set[str] = set()

    def configure(self, updated: set[str]) -> None:
        if "proxyauth" in updated:
            self.expected = ctx.options.proxyauth or None
            self.authenticated.clear()

    def http_connect(self, flow: HTTPFlow) -> None:
        self._check(flow)

    def requestheaders(self, flow: HTTPFlow) -> None:
        self._check(flow)

    def client_disconnected(self, client: Client) -> None:
        self.authenticated.discard(client.id)

    def _check(self, flow: HTTPFlow) -> None:
        if self.expected is None or flow.client_conn.id in self.authenticated:
            return
        given = credentials_from(flow.request.headers.get("proxy-authorization", ""))
        if given is not None and hmac.compare_digest(given.encode(), self.expected.encode()):
            if flow.request.method == "CONNECT":
                self.authenticated.add(flow.client_conn.id)
            return
        flow.response = Response.make(
            407,
            "twisted_mitm: proxy authentication required\n",
            {"Proxy-Authenticate": f'Basic realm="{REALM}"', "Content-Type": "text/plain; charset=utf-8"},
        )
