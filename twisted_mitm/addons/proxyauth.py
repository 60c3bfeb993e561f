# -*- test-case-name: tests.test_builtin_addons -*-
"""C{proxyauth=user:pass}: clients must authenticate to the proxy with Basic credentials.

A client authenticates once per connection: on its CONNECT, or on each plain request
it sends. Requests inside an authenticated tunnel are not asked again. A missing or
wrong C{Proxy-Authorization} is answered with 407 and a C{Proxy-Authenticate}
challenge. Accepted credentials are removed from the request at once, as mitmproxy
does, so later hooks, recordings and the server never see them; the user name and
password go to C{flow.metadata["proxyauth"]} instead (on every request of an
authenticated tunnel too).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from twisted_mitm import ctx
from twisted_mitm.connection import Client
from twisted_mitm.hooks import Socks5AuthData
from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.mode_specs import ReverseMode

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
        self.authenticated: dict[str, tuple[str, str]] = {}

    def configure(self, updated: set[str]) -> None:
        if "proxyauth" in updated:
            self.expected = ctx.options.proxyauth or None
            self.authenticated.clear()

    def http_connect(self, flow: HTTPFlow) -> None:
        self._check(flow)

    def requestheaders(self, flow: HTTPFlow) -> None:
        self._check(flow)

    def client_disconnected(self, client: Client) -> None:
        self.authenticated.pop(client.id, None)

    def socks5_auth(self, data: Socks5AuthData) -> None:
        """A SOCKS5 client authenticates once, for its whole connection."""
        data.valid = self._valid(f"{data.username}:{data.password}")
        if data.valid:
            self.authenticated[data.client_conn.id] = (data.username, data.password)

    def _valid(self, given: str | None) -> bool:
        return given is not None and self.expected is not None and hmac.compare_digest(given.encode(), self.expected.encode())

    def _check(self, flow: HTTPFlow) -> None:
        if self.expected is None:
            return
        known = self.authenticated.get(flow.client_conn.id)
        if known is not None:
            flow.metadata["proxyauth"] = known
            return
        # A reverse proxy stands for the server: it asks as a server does (401), as mitmproxy's does.
        reverse = isinstance(flow.client_conn.proxy_mode, ReverseMode)
        header, status, challenge = ("authorization", 401, "WWW-Authenticate") if reverse else ("proxy-authorization", 407, "Proxy-Authenticate")
        given = credentials_from(flow.request.headers.get(header, ""))
        if self._valid(given):
            assert given is not None
            del flow.request.headers[header]
            user, _, password = given.partition(":")
            flow.metadata["proxyauth"] = (user, password)
            if flow.request.method == "CONNECT":
                self.authenticated[flow.client_conn.id] = (user, password)
            return
        flow.response = Response.make(
            status,
            "twisted_mitm: proxy authentication required\n",
            {challenge: f'Basic realm="{REALM}"', "Content-Type": "text/plain; charset=utf-8"},
        )
