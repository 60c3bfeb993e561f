# -*- test-case-name: tests.test_intercept -*-
"""Intercepting flows through a real proxy: held in their hook, streamed bodies held by
backpressure, released by C{flow.resume} or C{flow.kill}; the C{intercept} option."""

from __future__ import annotations

import sys

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import listen, raw_client, reactor, respond, rss, start_proxy, start_raw_origin, wait_until
from tests.test_command import live_http_flow, make_master
from tests.test_streaming_memory import Counter, LazyBody
from twisted_mitm import ctx
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.hooks import RequestheadersHook, RequestHook, ResponseheadersHook, ResponseHook
from twisted_mitm.http import HTTPFlow, Response

TOTAL = 64 << 20
#: How much the process's RSS may grow while the intercepted stream waits.
BUDGET = 16 << 20
HOLD = 1.5


class HoldAt:
    """An addon intercepting every flow in one hook and keeping the flows it held."""

    def __init__(self, hook: str) -> None:
        self.held: list[HTTPFlow] = []
        setattr(self, hook, self._hold)

    def _hold(self, flow: HTTPFlow) -> None:
        flow.intercept()
        self.held.append(flow)


def get(port: int, path: str = "/") -> bytes:
    return b"GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, path.encode(), port)


class HeldFlowTests(TestCase):
    """A flow intercepted in a hook goes no further until it is resumed or killed."""

    async def test_request_held_until_resume_command(self) -> None:
        """A request intercepted in its request hook reaches the origin only after flow.resume."""
        origin = start_raw_origin(self, respond(200, b"answer"))
        holder = HoldAt("request")
        proxy = start_proxy(self, addons=[holder])
        client = await raw_client(self, proxy.port)
        client.send(get(origin.port))
        await wait_until(lambda: holder.held, what="the request hook")
        await deferLater(reactor, 0.3, lambda: None)
        self.assertEqual((origin.requests, client.data), ([], b""))
        self.assertTrue(holder.held[0].intercepted)
        proxy.master.commands.execute("flow.resume @all")
        data = await client.receive_until(lambda data: data.endswith(b"answer"))
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        self.assertEqual(len(origin.requests), 1)

    async def test_kill_while_held(self) -> None:
        """flow.kill on a held flow drops the client's connection, nothing is sent upstream, and error runs once."""
        origin = start_raw_origin(self, respond(200, b"never"))
        holder = HoldAt("request")
        errors: list[HTTPFlow] = []

        class Errors:
            def error(self, flow: HTTPFlow) -> None:
                errors.append(flow)

        proxy = start_proxy(self, addons=[holder, Errors()])
        client = await raw_client(self, proxy.port)
        client.send(get(origin.port))
        await wait_until(lambda: holder.held, what="the request hook")
        proxy.master.commands.call("flow.kill", holder.held)
        self.assertEqual(await client.wait_closed(), b"")
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(origin.requests, [])
        self.assertEqual(errors, holder.held)

    async def test_streamed_response_held_by_backpressure(self) -> None:
        """A 64 MiB streamed response intercepted at responseheaders waits unread: the client gets
        nothing, the origin gets to write only what the socket buffers hold, the proxy's memory stays
        flat; after flow.resume the whole body arrives."""
        origins: list[LazyBody] = []

        class Origin(Protocol):
            def dataReceived(self, data: bytes) -> None:
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % TOTAL)
                origins.append(LazyBody(self.transport, TOTAL))

        port = listen(self, Factory.forProtocol(Origin))
        holder = HoldAt("responseheaders")
        proxy = start_proxy(self, options=["stream_large_bodies=1m"], addons=[holder])
        counter = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port, timeout=5), Counter())
        self.addCleanup(counter.transport.abortConnection)
        before = rss()
        counter.send(get(port, "/big"))
        await wait_until(lambda: holder.held, what="the responseheaders hook")
        await deferLater(reactor, HOLD, lambda: None)
        written_while_held = TOTAL - origins[0].remaining
        held_rss = rss()
        print(f"\nheld: origin wrote {written_while_held >> 10} KiB, RSS +{(held_rss - before) / (1 << 20):.1f} MiB", file=sys.stderr)
        self.assertEqual((counter.data, counter.count), (b"", 0))
        self.assertTrue(holder.held[0].response.stream)  # type: ignore[union-attr]
        # What the kernel's socket buffers and the proxy's read-ahead hold: a few MiB, not the body.
        self.assertLess(written_while_held, TOTAL // 4)
        self.assertLess(held_rss - before, BUDGET)
        holder.held[0].resume()
        await wait_until(lambda: counter.count >= TOTAL, timeout=30, what="the whole body")
        self.assertEqual(counter.count, TOTAL)
        self.assertLess(rss() - before, BUDGET)


class InterceptAddonTests(SynchronousTestCase):
    """The intercept option: which flows the built-in addon holds, and when."""

    def setUp(self) -> None:
        self.master = make_master()

    def trigger_held(self, hook: object) -> bool:
        """Run a hook; whether it left its flow intercepted (then resume it)."""
        done = self.master.addons.trigger(hook)  # type: ignore[arg-type]
        held = not done.called
        if held:
            hook.flow.resume()  # type: ignore[attr-defined]
        self.successResultOf(done)
        return held

    def test_option_toggles_active(self) -> None:
        """Setting intercept turns intercept_active on, unsetting turns it off; a bad filter is refused."""
        self.master.options.set("intercept=~u /hold")
        self.assertTrue(ctx.options.intercept_active)
        self.master.options.set("intercept=")
        self.assertFalse(ctx.options.intercept_active)
        error = self.assertRaises(OptionsError, self.master.options.set, "intercept=~nonsense")
        self.assertIn("intercept:", str(error))
        self.assertIsNone(ctx.options.intercept)

    def test_buffered_held_when_complete(self) -> None:
        """A matching buffered flow is held in request and response, a flow that does not match is not."""
        self.master.options.set("intercept=~u /hold")
        flow = live_http_flow(self.master, "http://example.com/hold")
        other = live_http_flow(self.master, "http://example.com/free")
        flow.response = other.response = Response.make(200)
        self.assertEqual([self.trigger_held(hook) for hook in (RequestheadersHook(flow), RequestHook(flow), ResponseheadersHook(flow), ResponseHook(flow))], [False, True, False, True])
        self.assertFalse(self.trigger_held(RequestHook(other)))
        self.master.options.set("intercept_active=false")
        self.assertFalse(self.trigger_held(RequestHook(flow)))

    def test_streamed_held_at_head_once(self) -> None:
        """A streamed message is held at its head, and not again when its hook runs after the stream."""
        self.master.options.set("intercept=~u /hold")
        flow = live_http_flow(self.master, "http://example.com/hold")
        flow.response = Response.make(200)
        flow.response.stream = True
        self.assertEqual([self.trigger_held(hook) for hook in (ResponseheadersHook(flow), ResponseHook(flow))], [True, False])
