# -*- test-case-name: tests.test_builtin_addons -*-
"""C{proxyauth}: clients must authenticate to the proxy with Basic credentials.

As in mitmproxy, the option is C{user:pass} (one user), C{any} (any credentials are
accepted, but some must be given), or C{@path} (the users of an htpasswd file with bcrypt
or C{{SHA}} entries). A bcrypt check costs tens of milliseconds by design, so the
credentials last accepted are remembered (as a SHA-256 digest, never in clear) and a
client sending them again is not checked again.

A client authenticates once per connection: on its CONNECT, on each plain request it
sends, or in its SOCKS5 handshake (the C{socks5_auth} hook). Requests inside an
authenticated tunnel are not asked again. A missing or wrong C{Proxy-Authorization} is
answered with 407 and a C{Proxy-Authenticate} challenge (in reverse mode, as a server:
C{Authorization}, 401, C{WWW-Authenticate}); accepted credentials leave the request at
once, as in mitmproxy, and are kept in C{flow.metadata["proxyauth"]}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable

from twisted_mitm import ctx
from twisted_mitm.connection import Client
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.hooks import Socks5AuthData
from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.mode_specs import ReverseMode
from twisted_mitm.utils.htpasswd import HtpasswdFile

REALM = "twisted_mitm"

#: How many accepted credentials L{Remembered} keeps.
REMEMBERED = 256

Validator = Callable[[str, str], bool]
"""Tells whether a user name and password are accepted."""


def credentials_from(header: str) -> str | None:
    """C{user:pass} from a C{Basic} authorization header, or C{None}."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def single_user(spec: str) -> Validator:
    """C{user:pass}: that user with that password."""
    expected_user, _, expected_password = spec.partition(":")

    def check(user: str, password: str) -> bool:
        return hmac.compare_digest(user.encode(), expected_user.encode()) & hmac.compare_digest(
            password.encode(), expected_password.encode()
        )

    return check


def any_user(user: str, password: str) -> bool:
    """C{any}: whatever was given."""
    return True


class Remembered:
    """A validator that does not check again the credentials it last accepted."""

    def __init__(self, check: Validator) -> None:
        self._check = check
        self._accepted: OrderedDict[bytes, None] = OrderedDict()

    def __call__(self, user: str, password: str) -> bool:
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if key in self._accepted:
            self._accepted.move_to_end(key)
            return True
        if not self._check(user, password):
            return False
        self._accepted[key] = None
        if len(self._accepted) > REMEMBERED:
            self._accepted.popitem(last=False)
        return True


def validator_for(spec: str) -> Validator:
    """The validator of a C{proxyauth} value.

    @raise OptionsError: an htpasswd file that cannot be read or has unsupported entries.
    """
    if spec == "any":
        return any_user
    if spec.startswith("@"):
        try:
            users = HtpasswdFile.from_file(spec[1:])
        except OSError as error:
            raise OptionsError(f"proxyauth: cannot read the htpasswd file {spec[1:]}: {error.strerror or error}") from None
        except ValueError as error:
            raise OptionsError(f"proxyauth: {error}") from None
        return Remembered(users.check_password)
    return single_user(spec)


class ProxyAuth:
    """Answers unauthenticated clients with 407 (401 in reverse mode) when C{proxyauth} is set."""

    def __init__(self) -> None:
        self.validator: Validator | None = None
        self.authenticated: dict[str, tuple[str, str]] = {}

    def configure(self, updated: set[str]) -> None:
        if "proxyauth" in updated:
            spec = ctx.options.proxyauth
            self.validator = validator_for(spec) if spec else None
            self.authenticated.clear()

    def http_connect(self, flow: HTTPFlow) -> None:
        self._check(flow)

    def requestheaders(self, flow: HTTPFlow) -> None:
        self._check(flow)

    def client_disconnected(self, client: Client) -> None:
        self.authenticated.pop(client.id, None)

    def socks5_auth(self, data: Socks5AuthData) -> None:
        """A SOCKS5 client authenticates once, for its whole connection."""
        data.valid = self.validator is not None and self.validator(data.username, data.password)
        if data.valid:
            self.authenticated[data.client_conn.id] = (data.username, data.password)

    def _check(self, flow: HTTPFlow) -> None:
        if self.validator is None:
            return
        known = self.authenticated.get(flow.client_conn.id)
        if known is not None:
            flow.metadata["proxyauth"] = known
            return
        # A reverse proxy stands for the server: it asks as a server does (401), as mitmproxy's does.
        reverse = isinstance(flow.client_conn.proxy_mode, ReverseMode)
        header, status, challenge = ("authorization", 401, "WWW-Authenticate") if reverse else ("proxy-authorization", 407, "Proxy-Authenticate")
        given = credentials_from(flow.request.headers.get(header, ""))
        if given is not None and ":" in given:
            user, _, password = given.partition(":")
            if self.validator(user, password):
                del flow.request.headers[header]
                flow.metadata["proxyauth"] = (user, password)
                if flow.request.method == "CONNECT":
                    self.authenticated[flow.client_conn.id] = (user, password)
                return
        flow.response = Response.make(
            status,
            "twisted_mitm: proxy authentication required\n",
            {challenge: f'Basic realm="{REALM}"', "Content-Type": "text/plain; charset=utf-8"},
        )
