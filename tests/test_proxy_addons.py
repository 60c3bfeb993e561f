# -*- test-case-name: tests.test_proxy_addons -*-
"""Addons and scripts driving live flows, and the flow log, over loopback (SPEC §3, §6)."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from typing import Any

import brotli  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from tests.support import (
    HookRecorder,
    curl,
    echo_body,
    reactor,
    respond,
    start_body_origin,
    start_proxy,
    start_raw_origin,
)
from twisted_mitm.hooks import ServerConnectionHookData
from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.log import install_logging_bridge


class _Hooks:
    """An addon whose hooks are given as keyword functions."""

    def __init__(self, **hooks: Any) -> None:
        for name, function in hooks.items():
            setattr(self, name, function)


def texts(events: Any, namespace_prefix: str = "") -> list[str]:
    """The formatted text of captured log events, optionally only from one namespace."""
    return [formatEvent(event) for event in events if event.get("log_namespace", "").startswith(namespace_prefix)]


class HookTests(TestCase):
    """The HTTP hooks run in mitmproxy's order and can answer, kill and re-target flows."""

    def write_script(self, source: str) -> str:
        """Write a script file for this test and return its path."""
        path = self.mktemp() + ".py"
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        return path

    async def test_hook_order(self) -> None:
        """requestheaders, request, (server connect), responseheaders, response run in that order."""
        recorder = HookRecorder()
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, addons=[recorder])
        await curl("-x", proxy.url, origin.url + "/")
        names = recorder.names("requestheaders", "request", "server_connect", "server_connected", "responseheaders", "response")
        self.assertEqual(names, ["requestheaders", "request", "server_connect", "server_connected", "responseheaders", "response"])

    async def test_response_made_in_requestheaders(self) -> None:
        """Setting flow.response in requestheaders answers the client; the origin is never contacted."""

        def requestheaders(flow: HTTPFlow) -> None:
            flow.response = Response.make(201, b"made early", {"X-Made": "yes"})

        origin = start_raw_origin(self, respond(200, b"origin"))
        proxy = start_proxy(self, addons=[_Hooks(requestheaders=requestheaders)])
        out, err, code = await curl("-x", proxy.url, "-i", "--data-binary", "ignored body", origin.url + "/")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith(b"HTTP/1.1 201 "), out)
        self.assertIn(b"X-Made: yes", out)
        self.assertTrue(out.endswith(b"\r\n\r\nmade early"), out)
        self.assertEqual(origin.connections, [])

    async def test_response_made_in_request(self) -> None:
        """Setting flow.response in request answers with the hook's response; the hook saw the body."""
        seen: list[bytes] = []

        def request(flow: HTTPFlow) -> None:
            seen.append(flow.request.content or b"")
            flow.response = Response.make(200, b"made late")

        origin = start_raw_origin(self, respond(200, b"origin"))
        proxy = start_proxy(self, addons=[_Hooks(request=request)])
        out, err, code = await curl("-x", proxy.url, "--data-binary", "the body", origin.url + "/")
        self.assertEqual((code, out, seen), (0, b"made late", [b"the body"]), err)
        self.assertEqual(origin.connections, [])

    async def test_kill_drops_connection(self) -> None:
        """flow.kill() in request drops the client connection without an answer; the origin sees nothing."""
        recorder = HookRecorder()
        origin = start_raw_origin(self, respond(200, b"origin"))
        proxy = start_proxy(self, addons=[_Hooks(request=lambda flow: flow.kill()), recorder])
        out, _, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertIn(code, (52, 56))  # empty reply / connection reset
        self.assertEqual(out, b"")
        self.assertEqual(origin.connections, [])

    async def test_retarget_with_host_and_port(self) -> None:
        """Setting flow.request.host and .port sends the request to that server instead."""
        wrong = start_raw_origin(self, respond(200, b"wrong"))
        right = start_raw_origin(self, respond(200, b"right"))

        def request(flow: HTTPFlow) -> None:
            flow.request.host = "127.0.0.1"
            flow.request.port = right.port

        proxy = start_proxy(self, addons=[_Hooks(request=request)])
        out, err, code = await curl("-x", proxy.url, wrong.url + "/p")
        self.assertEqual((code, out), (0, b"right"), err)
        self.assertEqual(wrong.connections, [])
        self.assertTrue(right.requests[0].startswith(b"GET /p HTTP/1.1\r\n"))

    async def test_retarget_with_url(self) -> None:
        """Setting flow.request.url sends the request to that URL's server and path."""
        wrong = start_raw_origin(self, respond(200, b"wrong"))
        right = start_raw_origin(self, respond(200, b"right"))

        def requestheaders(flow: HTTPFlow) -> None:
            flow.request.url = right.url + "/elsewhere?x=1"

        proxy = start_proxy(self, addons=[_Hooks(requestheaders=requestheaders)])
        out, err, code = await curl("-x", proxy.url, wrong.url + "/p")
        self.assertEqual((code, out), (0, b"right"), err)
        self.assertEqual(wrong.connections, [])
        self.assertTrue(right.requests[0].startswith(b"GET /elsewhere?x=1 HTTP/1.1\r\n"))

    async def test_server_connect_redirects(self) -> None:
        """server_connect may change data.server.address: the connection goes there, the request is unchanged."""
        wrong = start_raw_origin(self, respond(200, b"wrong"))
        right = start_raw_origin(self, respond(200, b"right"))

        def server_connect(data: ServerConnectionHookData) -> None:
            data.server.address = ("127.0.0.1", right.port)

        proxy = start_proxy(self, addons=[_Hooks(server_connect=server_connect)])
        out, err, code = await curl("-x", proxy.url, wrong.url + "/p")
        self.assertEqual((code, out), (0, b"right"), err)
        self.assertEqual(wrong.connections, [])
        self.assertTrue(right.requests[0].startswith(b"GET /p HTTP/1.1\r\n"))

    async def test_server_connect_refuses(self) -> None:
        """server_connect may set data.server.error: no connection is made, the client gets a 502 saying why."""
        recorder = HookRecorder()
        origin = start_raw_origin(self, respond(200, b"origin"))

        def server_connect(data: ServerConnectionHookData) -> None:
            data.server.error = "not this one"

        proxy = start_proxy(self, addons=[_Hooks(server_connect=server_connect), recorder])
        out, err, code = await curl("-x", proxy.url, "-i", origin.url + "/")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith(b"HTTP/1.1 502 "), out)
        self.assertIn(b"not this one", out)
        self.assertEqual(origin.connections, [])
        self.assertIn("error", recorder.names("error", "server_connected"))
        self.assertNotIn("server_connected", recorder.names("error", "server_connected"))

    async def test_async_hook_holds_only_its_flow(self) -> None:
        """While an async hook awaits asyncio.sleep for one flow, another client's flow completes."""
        entered: Deferred[None] = Deferred()

        class Sleeper:
            async def request(self, flow: HTTPFlow) -> None:
                if flow.request.path == "/slow":
                    entered.callback(None)
                    await asyncio.sleep(1)
                    flow.request.headers["X-Slept"] = "yes"

        origin = start_raw_origin(self, lambda p, head: respond(200, b"slept" if b"X-Slept" in head else b"fast")(p, head))
        proxy = start_proxy(self, addons=[Sleeper()])
        slow = curl("-x", proxy.url, origin.url + "/slow")
        await entered.addTimeout(10, reactor)
        fast_out, _, _ = await curl("-x", proxy.url, origin.url + "/fast")
        self.assertEqual(fast_out, b"fast")
        self.assertFalse(slow.called)
        slow_out, _, _ = await slow
        self.assertEqual(slow_out, b"slept")

    async def test_response_text_under_brotli(self) -> None:
        """A response hook reads and rewrites the text of a br body; it leaves br-encoded and curl decodes it."""
        page = "<p>Größe matters</p>".encode()
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "br")]
        origin = start_raw_origin(self, respond(200, brotli.compress(page), headers))
        seen: list[str | None] = []

        def response(flow: HTTPFlow) -> None:
            assert flow.response is not None
            seen.append(flow.response.text)
            flow.response.text = (flow.response.text or "").replace("Größe", "Size")

        proxy = start_proxy(self, addons=[_Hooks(response=response)])
        out, err, code = await curl("-x", proxy.url, "-D", "-", origin.url + "/")
        self.assertEqual(code, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"\r\ncontent-encoding: br", head.lower())
        self.assertIn(b"\r\ncontent-length: %d" % len(body), head.lower())
        self.assertEqual(brotli.decompress(body), b"<p>Size matters</p>")
        decoded, err, code = await curl("--compressed", "-x", proxy.url, origin.url + "/")
        self.assertEqual((code, decoded), (0, b"<p>Size matters</p>"), err)
        self.assertEqual(seen, ["<p>Größe matters</p>"] * 2)

    async def test_exception_in_hook_logged_and_flow_completes(self) -> None:
        """A hook raising is logged with the script's file and line, and the flow still completes."""
        script = self.write_script(
            """
            def request(flow):
                flow.request.headers["X-Before"] = "1"
                1 / 0
            """
        )
        origin = start_raw_origin(self, respond(200, b"fine"))
        proxy = start_proxy(self, scripts=[script])
        with capturedLogs() as events:
            out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertEqual((code, out), (0, b"fine"), err)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(any(f"{script}:4: error in request hook" in text for text in texts(events)), texts(events))

    async def test_stdlib_logging_reaches_log(self) -> None:
        """stdlib logging.info from a script shows up in the proxy's log."""
        handler = install_logging_bridge()
        self.addCleanup(logging.getLogger().removeHandler, handler)
        script = self.write_script(
            """
            import logging

            def response(flow):
                logging.info("script saw %s", flow.response.status_code)
            """
        )
        origin = start_raw_origin(self, respond(203, b"x"))
        proxy = start_proxy(self, scripts=[script])
        with capturedLogs() as events:
            await curl("-x", proxy.url, origin.url + "/")
        self.assertIn("script saw 203", texts(events))

    async def test_script_option_set_with_set(self) -> None:
        """An option a script declares can be set with --set, and the script reads it via ctx.options."""
        script = self.write_script(
            """
            from twisted_mitm import ctx, http

            def load(loader):
                loader.add_option(name="greeting", typespec=str, default="hello", help="What to answer.")

            def request(flow):
                flow.response = http.Response.make(200, ctx.options.greeting)
            """
        )
        proxy = start_proxy(self, scripts=[script], options=["greeting=bonjour"])
        out, err, code = await curl("-x", proxy.url, "http://127.0.0.1:1/")
        self.assertEqual((code, out), (0, b"bonjour"), err)


class FlowLogTests(TestCase):
    """One log line per flow (SPEC §6)."""

    async def test_one_line_per_flow(self) -> None:
        """A completed flow logs one line with client address, method, URL, status and size, and no factory noise."""
        origin = start_body_origin(self, echo_body)
        proxy = start_proxy(self)
        with capturedLogs() as events:
            out, err, code = await curl("-x", proxy.url, "--data-binary", "x" * 2000, origin.url + "/log?q=1")
        self.assertEqual(code, 0, err)
        lines = texts(events, "twisted_mitm.addons.flowlog")
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], rf"^127\.0\.0\.1:\d+: POST http://127\.0\.0\.1:{origin.port}/log\?q=1 << 200 OK 2\.0k$")
        self.assertEqual([text for text in texts(events) if "factory" in text.lower()], [])

    async def test_filter_and_headers(self) -> None:
        """With dumper_filter only matching flows are logged; flow_detail=2 adds their headers."""
        origin = start_raw_origin(self, respond(200, b"ok", [("X-Origin", "yes")]))
        proxy = start_proxy(self, options=["dumper_filter=~m POST", "flow_detail=2"])
        with capturedLogs() as events:
            await curl("-x", proxy.url, origin.url + "/get")
            await curl("-x", proxy.url, "-d", "x=1", origin.url + "/post")
        lines = texts(events, "twisted_mitm.addons.flowlog")
        self.assertEqual(len(lines), 1, lines)
        request, response = lines[0].split("\n << ")
        self.assertRegex(request, rf"^127\.0\.0\.1:\d+: POST http://127\.0\.0\.1:{origin.port}/post\n    Host: 127\.0\.0\.1:{origin.port}\n")
        self.assertIn("\n    Content-Length: 3", request)
        self.assertTrue(response.startswith("200 Whatever 2b\n"), response)
        self.assertIn("\n    X-Origin: yes", response)

    async def test_flow_detail_zero_silences_but_errors_log(self) -> None:
        """flow_detail=0 logs no line for a completed flow but still logs a failed one."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, options=["flow_detail=0"])
        with capturedLogs() as events:
            await curl("-x", proxy.url, origin.url + "/quiet")
            await curl("-x", proxy.url, "http://no-such-host.invalid/loud")
        lines = texts(events, "twisted_mitm.addons.flowlog")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("GET http://no-such-host.invalid/loud << error: cannot resolve host", lines[0])
