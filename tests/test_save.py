# -*- test-case-name: tests.test_save -*-
"""Tests for L{twisted_mitm.addons.save}: C{save_stream_file} (C{-w}) and C{save.file}.

L{SaveAddonTests} drives the addon's hooks by hand; L{SavedTrafficTests} sends real
traffic through an in-process proxy and reads the file it wrote.
"""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from websockets.asyncio.client import connect

from tests.support import (
    curl,
    origin_ca_path,
    origin_certificate,
    respond,
    start_echo_origin,
    start_proxy,
    start_raw_origin,
    wait_until,
)
from tests.test_flow import make_connections, make_http_flow
from tests.test_proxy_errors import free_port
from tests.test_io import jsonable, mitmproxy_python, read_flows, run_mitmproxy_script
from tests.test_tunnel import converse
from tests.test_websocket import aio, echo, start_server
from twisted_mitm.addons.save import Save
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.http import HTTPFlow
from twisted_mitm.master import CommandError, Master
from twisted_mitm.options import default_options
from twisted_mitm.tcp import TCPFlow, TCPMessage
from twisted_mitm.websocket import WebSocketData, WebSocketMessage


class SaveAddonTests(SynchronousTestCase):
    """The addon alone, its hooks called as the proxy would call them."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.path = self.folder / "flows.mitm"
        self.shutdowns: list[bool] = []
        self.master = Master(default_options(), shutdown=lambda: self.shutdowns.append(True))
        self.save = Save()
        self.master.addons.add(self.save)
        self.addCleanup(self.save.done)

    def start(self, spec: str | None = None) -> None:
        """Set C{save_stream_file} (to C{self.path} by default)."""
        self.master.options.save_stream_file = spec or str(self.path)

    def test_http_flow_written_at_its_end(self) -> None:
        """An HTTP flow is written at response, not before; the folder is created."""
        self.start()
        flow = make_http_flow()
        self.save.request(flow)
        self.assertEqual(self.path.read_bytes(), b"")
        self.save.response(flow)
        self.assertEqual([f.id for f in read_flows(self.path)], [flow.id])

    def test_error_flow(self) -> None:
        """An HTTP flow that failed is written at error."""
        self.start()
        flow = make_http_flow()
        flow.response = None
        self.save.error(flow)
        (saved,) = read_flows(self.path)
        self.assertIsNone(saved.response)

    def test_websocket_flow_written_at_websocket_end(self) -> None:
        """A WebSocket flow is not written at its 101 response but at websocket_end."""
        self.start()
        flow = make_http_flow()
        flow.websocket = WebSocketData(messages=[WebSocketMessage(1, True, b"hi")])
        self.save.response(flow)
        self.assertEqual(read_flows(self.path), [])
        self.save.websocket_end(flow)
        self.assertEqual(read_flows(self.path)[0].websocket.messages[0].content, b"hi")

    def test_tcp_flows(self) -> None:
        """TCP flows are written at tcp_end and at tcp_error."""
        self.start()
        flows = [TCPFlow(*make_connections()), TCPFlow(*make_connections())]
        flows[0].messages.append(TCPMessage(True, b"x"))
        for flow in flows:
            self.save.tcp_start(flow)
        self.save.tcp_end(flows[0])
        self.save.tcp_error(flows[1])
        self.assertEqual([f.id for f in read_flows(self.path)], [f.id for f in flows])

    def test_unfinished_flows_written_at_done(self) -> None:
        """Flows that started and did not end are written when the addon is done."""
        self.start()
        flow = make_http_flow()
        flow.response = None
        self.save.request(flow)
        self.save.done()
        self.assertEqual([f.id for f in read_flows(self.path)], [flow.id])
        self.assertIsNone(self.save.writer)

    def test_owner_only(self) -> None:
        """A new flow file can be read by its owner only."""
        self.start()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_overwrite_and_append(self) -> None:
        """A plain path starts the file afresh; a leading + appends to it."""
        self.folder.mkdir()
        self.path.write_bytes(b"old bytes")
        self.start()
        self.assertEqual(self.path.read_bytes(), b"")
        first = make_http_flow()
        self.save.response(first)
        self.master.options.save_stream_file = None
        self.start("+" + str(self.path))
        second = make_http_flow()
        self.save.response(second)
        self.assertEqual([f.id for f in read_flows(self.path)], [first.id, second.id])

    def test_strftime_path(self) -> None:
        """strftime() codes in the path are filled in."""
        self.start(str(self.folder / "flows-%Y.mitm"))
        self.save.response(make_http_flow())
        year = datetime.datetime.now().year
        self.assertEqual(len(read_flows(self.folder / f"flows-{year}.mitm")), 1)

    def test_unset_closes(self) -> None:
        """Unsetting the option closes the file; later flows are not written."""
        self.start()
        self.master.options.save_stream_file = None
        self.save.response(make_http_flow())
        self.assertEqual(read_flows(self.path), [])

    def test_unwritable_path(self) -> None:
        """A path that cannot be written is refused in one line naming it."""
        self.folder.mkdir()
        (self.folder / "a-file").write_bytes(b"")
        with self.assertRaises(OptionsError) as caught:
            self.start(str(self.folder / "a-file" / "flows.mitm"))
        self.assertEqual(
            str(caught.exception),
            f"save_stream_file: cannot write {self.folder / 'a-file' / 'flows.mitm'}: File exists ({self.folder / 'a-file'})",
        )

    def test_write_failure_stops_the_proxy(self) -> None:
        """A flow that cannot be written (a full disk) stops the proxy with a critical line."""
        if not os.path.exists("/dev/full"):
            raise SkipTest("needs /dev/full to simulate a full disk")
        self.start("/dev/full")
        with capturedLogs() as events:
            self.save.response(make_http_flow())
        self.assertEqual(self.shutdowns, [True])
        (event,) = [e for e in events if e["log_level"] == LogLevel.critical]
        self.assertIn("cannot write /dev/full", event["log_format"].format(**event))

    def test_unsaveable_flow_is_skipped(self) -> None:
        """A flow holding an unsaveable object is logged and skipped; the next is written."""
        self.start()
        bad, good = make_http_flow(), make_http_flow()
        bad.metadata["socket"] = object()
        with capturedLogs() as events:
            self.save.response(bad)
        self.save.response(good)
        self.assertEqual([f.id for f in read_flows(self.path)], [good.id])
        self.assertTrue(any(f"flow {bad.id} not saved" in e["log_format"].format(**e) for e in events))

    def test_filter_chooses_the_flows(self) -> None:
        """save_stream_filter: only flows matching the expression are written."""
        self.start()
        self.master.options.save_stream_filter = "~m POST"
        get, post = make_http_flow(), make_http_flow()
        post.request.method = "POST"
        self.save.response(get)
        self.save.response(post)
        self.assertEqual([f.id for f in read_flows(self.path)], [post.id])

    def test_bad_filter_refused(self) -> None:
        """A save_stream_filter that does not parse is refused with one line naming the option."""
        error = self.assertRaises(OptionsError, self.master.options.set, "save_stream_filter=~x nope")
        self.assertIn("save_stream_filter: Invalid filter expression", str(error))

    def test_save_file_command(self) -> None:
        """save.file writes the flows it is given; + appends; an unwritable path is a CommandError."""
        flows = [make_http_flow(), make_http_flow()]
        self.master.commands.call("save.file", flows[:1], str(self.path))
        self.master.commands.call("save.file", flows[1:], "+" + str(self.path))
        self.assertEqual([f.id for f in read_flows(self.path)], [f.id for f in flows])
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        (self.folder / "a-file").write_bytes(b"")
        with self.assertRaises(CommandError) as caught:
            self.master.commands.call("save.file", flows, str(self.folder / "a-file" / "x"))
        self.assertIn(f"save.file: cannot write {self.folder / 'a-file' / 'x'}: File exists", str(caught.exception))


class ChangeResponse:
    """An addon (standing for a script) that rewrites every response body."""

    def response(self, flow: HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.content = b"changed by a script"


class SavedTrafficTests(TestCase):
    """Flows that went through the proxy are saved as they ended, with what scripts did."""

    def setUp(self) -> None:
        self.path = Path(self.mktemp()).absolute()

    def start_saving(self, *options: str, addons: list[object] | None = None) -> Any:
        return start_proxy(self, options=[f"save_stream_file={self.path}", *options], addons=addons or [])

    async def saved(self, count: int) -> list[Any]:
        """The flows in the file once it holds C{count} of them."""
        await wait_until(lambda: self.path.exists() and len(read_flows(self.path)) >= count, 10, f"{count} saved flows")
        return read_flows(self.path)

    async def test_http(self) -> None:
        """A GET, a POST and a refused connection are saved with requests, responses, error and connection records."""
        origin = start_raw_origin(self, respond(200, b"from origin", [("Content-Type", "text/plain")]))
        proxy = self.start_saving()
        await curl("-x", proxy.url, f"{origin.url}/get?x=1")
        await curl("-x", proxy.url, "-d", "a=1", f"{origin.url}/post")
        await curl("-x", proxy.url, f"http://127.0.0.1:{free_port()}/refused")
        get, post, refused = await self.saved(3)
        self.assertEqual((get.request.method, get.request.url), ("GET", f"{origin.url}/get?x=1"))
        self.assertEqual((get.response.status_code, get.response.content), (200, b"from origin"))
        self.assertEqual(get.client_conn.peername[0], "127.0.0.1")
        self.assertEqual(get.server_conn.peername, ("127.0.0.1", origin.port))
        self.assertIsNotNone(get.server_conn.timestamp_tcp_setup)
        self.assertEqual((post.request.method, post.request.content), ("POST", b"a=1"))
        self.assertIsNotNone(refused.error)
        self.assertFalse(get.live)

    async def test_scripts_changes_are_saved(self) -> None:
        """A response changed by an addon in the response hook is saved as changed."""
        origin = start_raw_origin(self, respond(200, b"original"))
        proxy = self.start_saving(addons=[ChangeResponse()])
        out, _, _ = await curl("-x", proxy.url, f"{origin.url}/")
        self.assertEqual(out, b"changed by a script")
        (flow,) = await self.saved(1)
        self.assertEqual(flow.response.content, b"changed by a script")

    async def test_https(self) -> None:
        """An intercepted HTTPS flow is saved with TLS on both connection records: version, cipher,
        ALPN, the client's offers, the leaf the proxy showed and the origin's certificate."""
        origin = start_raw_origin(self, respond(200, b"secret"), tls=origin_certificate("localhost"))
        proxy = self.start_saving(f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}")
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/s")
        self.assertEqual((code, out), (0, b"secret"), err)
        (flow,) = await self.saved(1)
        self.assertEqual(flow.request.url, f"https://localhost:{origin.port}/s")
        self.assertTrue(flow.client_conn.tls and flow.client_conn.tls_established)
        self.assertEqual(flow.client_conn.sni, "localhost")
        self.assertTrue(flow.client_conn.tls_version.startswith("TLSv1."))
        self.assertTrue(flow.server_conn.tls and flow.server_conn.tls_established)
        for conn in (flow.client_conn, flow.server_conn):
            self.assertTrue(conn.cipher and conn.tls_version.startswith("TLSv1."), (conn.cipher, conn.tls_version))
            self.assertEqual(conn.alpn, b"http/1.1")
        self.assertIn(b"http/1.1", flow.client_conn.alpn_offers)
        self.assertEqual(flow.client_conn.mitmcert.cn, "localhost")
        self.assertEqual(flow.server_conn.certificate_list[0].to_cryptography(), origin_certificate("localhost").cert)

    async def test_websocket(self) -> None:
        """A WebSocket flow is saved at its end with its messages and close code."""
        proxy = self.start_saving()

        async def talk() -> None:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/chat", proxy=proxy.url) as websocket:
                await websocket.send("text")
                await websocket.recv()
                await websocket.send(b"\x00binary")
                await websocket.recv()

        await aio(talk())
        (flow,) = await self.saved(1)
        self.assertEqual(flow.response.status_code, 101)
        self.assertEqual(
            [(m.from_client, m.is_text, m.content) for m in flow.websocket.messages],
            [(True, True, b"text"), (False, True, b"text"), (True, False, b"\x00binary"), (False, False, b"\x00binary")],
        )
        self.assertEqual(flow.websocket.close_code, 1000)

    async def test_tcp(self) -> None:
        """A raw TCP conversation inside CONNECT is saved at tcp_end with its messages."""
        echo_origin = start_echo_origin(self)
        proxy = self.start_saving()
        await deferToThread(converse, proxy.port, f"127.0.0.1:{echo_origin.port}", [b"\x00raw bytes"])
        (flow,) = await self.saved(1)
        self.assertIsInstance(flow, TCPFlow)
        self.assertEqual(b"".join(m.content for m in flow.messages if m.from_client), b"\x00raw bytes")
        self.assertEqual(b"".join(m.content for m in flow.messages if not m.from_client), b"\x00raw bytes")

    async def test_mitmproxy_reads_saved_traffic(self) -> None:
        """mitmproxy 12 loads a file saved from live traffic, to the state twisted_mitm saved."""
        mitmproxy_python()  # skips, saying why, without mitmproxy
        origin = start_raw_origin(self, respond(200, b"for mitmproxy"))
        proxy = self.start_saving()
        await curl("-x", proxy.url, f"{origin.url}/interop")
        saved = await self.saved(1)
        theirs = await deferToThread(run_mitmproxy_script, "states", str(self.path))
        self.assertEqual(theirs, [jsonable(flow.get_state()) for flow in saved])

