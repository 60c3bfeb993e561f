# -*- test-case-name: tests.test_anticache -*-
"""C{anticache}: remove the request headers that let a server answer 304 Not Modified.

In the C{request} hook, as in mitmproxy (L{twisted_mitm.http.Request.anticache}), so
that every response comes with its body.
"""

from __future__ import annotations

from twisted_mitm import ctx
from twisted_mitm.http import HTTPFlow


class AntiCache:
    """Strips If-Modified-Since and If-None-Match when C{anticache} is on."""

    def request(self, flow: HTTPFlow) -> None:
        if ctx.options.anticache:
            flow.request.anticache()
