# -*- test-case-name: tests.test_stickycookie -*-
"""C{stickycookie}: keep a cookie jar in the proxy and send it with matching requests.

As in mitmproxy: once C{stickycookie} holds a filter, every response's Set-Cookie
headers go into the jar, keyed by domain (the cookie's Domain, else the request's host),
port and path (the cookie's Path, else C{/}); an expired cookie leaves it. A request the
filter matches then has its Cookie header replaced by the jar's cookies for its host,
port and path (values quoted where they need it), and the flow's metadata is marked
C{stickycookie}.
"""

from __future__ import annotations

import time
from collections import defaultdict
from email.utils import mktime_tz, parsedate_tz
from http import cookiejar

from twisted_mitm import ctx, flowfilter
from twisted_mitm.http import CookieAttrs, HTTPFlow
from twisted_mitm.utils.spec import FlowFilter

Origin = tuple[str, int, str]
"""Where a cookie goes back to: C{(domain, port, path)}."""


def cookie_origin(attrs: CookieAttrs, flow: HTTPFlow) -> Origin:
    """The domain, port and path a cookie set in C{flow}'s response belongs to."""
    return attrs.get("domain") or flow.request.host, flow.request.port, attrs.get("path") or "/"


def domain_match(host: str, domain: str) -> bool:
    """Whether a cookie for C{domain} goes to C{host} (a leading dot is optional)."""
    return cookiejar.domain_match(host, domain) or cookiejar.domain_match(host, domain.strip("."))


def is_expired(attrs: CookieAttrs, now: float | None = None) -> bool:
    """Whether a cookie asks to be removed: an Expires date in the past, or Max-Age 0 or less."""
    expires = parsedate_tz(attrs.get("expires") or "")
    if expires is not None and mktime_tz(expires) < (time.time() if now is None else now):
        return True
    try:
        return int(attrs.get("max-age") or 1) <= 0
    except ValueError:
        return False


class StickyCookie:
    """The cookie jar of C{stickycookie}.

    @ivar jar: cookie values by name, per L{Origin}.
    """

    def __init__(self) -> None:
        self.jar: defaultdict[Origin, dict[str, str]] = defaultdict(dict)
        self.flt: FlowFilter | None = None

    def configure(self, updated: set[str]) -> None:
        if "stickycookie" in updated:
            expression = ctx.options.stickycookie
            self.flt = flowfilter.parse(expression) if expression else None

    def response(self, flow: HTTPFlow) -> None:
        if self.flt is None or flow.response is None:
            return
        for name, (value, attrs) in flow.response.cookies.items(multi=True):
            origin = cookie_origin(attrs, flow)
            if not domain_match(flow.request.host, origin[0]):
                continue
            if is_expired(attrs):
                self.jar[origin].pop(name, None)
                if not self.jar[origin]:
                    del self.jar[origin]
            else:
                self.jar[origin][name] = value

    def request(self, flow: HTTPFlow) -> None:
        if self.flt is None or not self.flt(flow):
            return
        request = flow.request
        cookies = [
            pair
            for (domain, port, path), named in self.jar.items()
            if domain_match(request.host, domain) and request.port == port and request.path.startswith(path)
            for pair in named.items()
        ]
        if cookies:
            flow.metadata["stickycookie"] = True
            request.cookies = cookies
