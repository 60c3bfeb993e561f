# -*- test-case-name: tests.test_anticomp -*-
"""C{anticomp}: ask servers for uncompressed responses.

In the C{request} hook, as in mitmproxy (L{twisted_mitm.http.Request.anticomp}: the
request's Accept-Encoding becomes C{identity}). Useful with C{modify_body} on streamed
responses, which can only be rewritten when they are not compressed.
"""

from __future__ import annotations

from twisted_mitm import ctx
from twisted_mitm.http import HTTPFlow


class AntiComp:
    """Sets Accept-Encoding: identity on every request when C{anticomp} is on."""

    def request(self, flow: HTTPFlow) -> None:
        if ctx.options.anticomp:
            flow.request.anticomp()
