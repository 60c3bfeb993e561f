# -*- test-case-name: tests.test_stickyauth -*-
"""C{stickyauth}: replay the last Authorization header a host was sent.

As in mitmproxy, in the C{request} hook: once C{stickyauth} holds a filter, every
request that carries an Authorization header has it remembered for its host, and a
matching request to that host without one gets the remembered header.
"""

from __future__ import annotations

from twisted_mitm import ctx, flowfilter
from twisted_mitm.http import HTTPFlow
from twisted_mitm.utils.spec import FlowFilter


class StickyAuth:
    """Remembers Authorization per host and adds it to matching requests that lack it.

    @ivar hosts: the last Authorization value seen per host.
    """

    def __init__(self) -> None:
        self.flt: FlowFilter | None = None
        self.hosts: dict[str, str] = {}

    def configure(self, updated: set[str]) -> None:
        if "stickyauth" in updated:
            expression = ctx.options.stickyauth
            self.flt = flowfilter.parse(expression) if expression else None

    def request(self, flow: HTTPFlow) -> None:
        if self.flt is None:
            return
        host = flow.request.host
        if "authorization" in flow.request.headers:
            self.hosts[host] = flow.request.headers["authorization"]
        elif self.flt(flow) and host in self.hosts:
            flow.request.headers["authorization"] = self.hosts[host]
