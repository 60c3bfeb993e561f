# -*- test-case-name: tests.test_intercept -*-
"""C{intercept=FILTER}: hold the flows that match until they are resumed (mitmproxy's addon).

Setting C{intercept} turns C{intercept_active} on; unsetting it turns it off. A held
flow waits in its hook (see L{twisted_mitm.flow.Flow.intercept}) until the C{flow.resume}
command, a script's C{flow.resume()} or C{flow.kill()} lets it go.

As in mitmproxy, a buffered message is held when it is complete (C{request}, C{response}
hooks), as are WebSocket and TCP messages. A message that streams is held at its head
instead (C{requestheaders}, C{responseheaders}): its body waits unread, the sender paused
by backpressure, where mitmproxy would only hold the flow after the body had gone through.
"""

from __future__ import annotations

import weakref

from twisted_mitm import ctx
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.http import HTTPFlow, Message

from twisted_mitm import flowfilter


class Intercept:
    """Intercepts the flows matching the C{intercept} filter while C{intercept_active} is on.

    @ivar held_at_head: messages intercepted at their head, so not intercepted again when complete.
    """

    def __init__(self) -> None:
        self.filter: flowfilter.Filter | None = None
        self.held_at_head: weakref.WeakSet[Message] = weakref.WeakSet()

    def configure(self, updated: set[str]) -> None:
        if "intercept" not in updated:
            return
        expression = ctx.options.intercept
        self.filter = _parse(expression) if expression else None
        if ctx.options.intercept_active != bool(expression):
            ctx.options.intercept_active = bool(expression)

    def should_intercept(self, flow: Flow) -> bool:
        """Whether C{flow} is to be held now."""
        return bool(ctx.options.intercept_active and self.filter is not None and not flow.is_replay and self.filter(flow))

    def requestheaders(self, flow: HTTPFlow) -> None:
        self._at_head(flow, flow.request)

    def responseheaders(self, flow: HTTPFlow) -> None:
        assert flow.response is not None
        self._at_head(flow, flow.response)

    def request(self, flow: HTTPFlow) -> None:
        self._when_complete(flow, flow.request)

    def response(self, flow: HTTPFlow) -> None:
        assert flow.response is not None
        self._when_complete(flow, flow.response)

    def websocket_message(self, flow: HTTPFlow) -> None:
        self._process(flow)

    def tcp_message(self, flow: Flow) -> None:
        self._process(flow)

    def _at_head(self, flow: HTTPFlow, message: Message) -> None:
        if message.stream and self.should_intercept(flow):
            self.held_at_head.add(message)
            flow.intercept()

    def _when_complete(self, flow: HTTPFlow, message: Message) -> None:
        if message not in self.held_at_head:
            self._process(flow)

    def _process(self, flow: Flow) -> None:
        if self.should_intercept(flow):
            flow.intercept()


def _parse(expression: str) -> flowfilter.Filter:
    try:
        return flowfilter.parse(expression)
    except ValueError as error:
        raise OptionsError(f"intercept: {error}") from None
