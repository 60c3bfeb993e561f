# -*- test-case-name: tests.test_io -*-
"""Tests for L{twisted_mitm.io}: flow files in mitmproxy 12's format.

The fixtures in C{tests/fixtures/flows} were written by mitmproxy 12 itself (see the
README there). L{MitmproxyInteropTests} goes further when a mitmproxy is installed:
mitmproxy reads what twisted_mitm writes, and the other way round.
"""

from __future__ import annotations

import copy
import importlib.util
import io as stdio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import origin_ca, origin_certificate
from twisted_mitm import io
from twisted_mitm.certs import Cert
from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import FlowReadException
from twisted_mitm.flow import Error, Flow
from twisted_mitm.http import Headers, HTTPFlow, Request, Response
from twisted_mitm.io import compat, tnetstring
from twisted_mitm.tcp import TCPFlow, TCPMessage
from twisted_mitm.websocket import Opcode, WebSocketData, WebSocketMessage

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
CHECKOUT = Path(__file__).parent.parent
T0 = 1767225600.0  # the fixtures' time origin


def _load_fixture_script() -> Any:
    """C{mitmproxy12.py} as a module: its C{jsonable} puts states in comparable JSON form."""
    spec = importlib.util.spec_from_file_location("mitmproxy12_fixture_script", FIXTURES / "mitmproxy12.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jsonable = _load_fixture_script().jsonable


def read_flows(path: Path) -> list[Any]:
    """Every flow of a file, read with L{io.FlowReader}."""
    with open(path, "rb") as file:
        return list(io.FlowReader(file).stream())


def write_flows(flows: list[Flow]) -> bytes:
    """The bytes L{io.FlowWriter} writes for C{flows}."""
    file = stdio.BytesIO()
    writer = io.FlowWriter(file)
    for flow in flows:
        writer.add(flow)
    return file.getvalue()


def sample_flows() -> list[Flow]:
    """Flows built with twisted_mitm's own API, covering every kind of state it saves."""
    client = Client(("127.0.0.1", 40001), ("127.0.0.1", 8080), T0)
    get = HTTPFlow(client, Server(("example.com", 80), peername=("192.0.2.7", 80), timestamp_start=T0 + 0.1))
    get.request = Request.make("GET", "http://example.com/a?b=c", headers={"Accept": "*/*"})
    get.response = Response.make(200, b"hello", {"Content-Type": "text/plain"})
    get.response.trailers = Headers(((b"X-Sum", b"1"),))
    get.metadata = {"request_body_size": 0, "nested": {"list": [1, "two", b"three"]}}
    get.marked, get.comment = ":default:", "sample"

    secure_client = Client(("::1", 40002, 0, 0), ("::1", 8080), T0 + 1, sni="secure.test", tls_version="TLSv1.3")
    secure_client.tls_established = True
    secure_client.mitmcert = Cert(origin_certificate("secure.test").cert)
    server = Server(("secure.test", 443), sni="secure.test", alpn=b"http/1.1", alpn_offers=[b"h2", b"http/1.1"])
    server.certificate_list = [Cert(origin_certificate("secure.test").cert), Cert(origin_ca()[1])]
    server.tls_established = True
    post = HTTPFlow(secure_client, server)
    post.request = Request.make("POST", "https://secure.test/form", b"a=1&b=\xff", {"Content-Type": "application/x-www-form-urlencoded"})
    post.error = Error("Connection reset", T0 + 1.5)

    websocket = HTTPFlow(client, Server(("ws.test", 80)))
    websocket.request = Request.make("GET", "http://ws.test/socket", headers={"Upgrade": "websocket"})
    websocket.response = Response.make(101)
    websocket.websocket = WebSocketData(
        messages=[
            WebSocketMessage(Opcode.TEXT, True, "hé".encode(), T0 + 2),
            WebSocketMessage(Opcode.BINARY, False, b"\x00\xff", T0 + 2.1, dropped=True, injected=True),
        ],
        closed_by_client=False,
        close_code=1000,
        close_reason="",
        timestamp_end=T0 + 3,
    )

    tcp = TCPFlow(client, Server(("tcp.test", 7), via=("http", ("upstream.test", 3128))))
    tcp.messages = [TCPMessage(True, b"ping", T0 + 4), TCPMessage(False, b"pong", T0 + 4.1)]
    tcp.error = Error("Connection refused", T0 + 5)
    return [get, post, websocket, tcp]


class FixtureTests(SynchronousTestCase):
    """Flow files written by mitmproxy 12 load with every field in place."""

    def test_http(self) -> None:
        """GET, POST, a refused connection and trailers: requests, responses, errors, flow fields."""
        get, post, refused, trailers = read_flows(FIXTURES / "http.mitm")
        self.assertIsInstance(get, HTTPFlow)
        self.assertEqual(get.id, "f0000000-0000-4000-8000-000000000001")
        self.assertEqual(get.request.url, "http://example.com/index.html?q=fixture")
        self.assertEqual(get.request.timestamp_start, T0 + 1.3)
        self.assertEqual((get.response.status_code, get.response.reason), (200, "OK"))
        self.assertEqual(get.response.headers["content-encoding"], "gzip")
        self.assertEqual(get.response.content, b"<html><body>fixture page</body></html>")
        self.assertEqual((get.marked, get.comment, get.metadata), (":star:", "the first flow", {"note": "fixture"}))
        self.assertEqual((get.is_replay, get.intercepted, get.live), (None, False, False))
        self.assertEqual(get.timestamp_created, T0 + 1)
        self.assertEqual(get.client_conn.peername, ("127.0.0.1", 50001))
        self.assertEqual(get.server_conn.address, ("example.com", 80))
        self.assertEqual(get.server_conn.sockname, ("192.0.2.1", 40001))
        self.assertEqual(get.server_conn.timestamp_tcp_setup, T0 + 1.2)

        self.assertEqual(post.request.method, "POST")
        self.assertEqual(dict(post.request.urlencoded_form), {"name": "Ada", "lang": "en"})
        self.assertEqual(post.response.status_code, 201)
        self.assertEqual(post.response.json(), {"id": 42})

        self.assertIsNone(refused.response)
        assert refused.error is not None
        self.assertEqual((refused.error.msg, refused.error.timestamp), ("Connection refused", T0 + 3.5))
        self.assertEqual(refused.request.port, 8081)
        self.assertIsNone(refused.server_conn.peername)

        self.assertEqual(trailers.response.trailers, Headers(((b"x-checksum", b"abc123"),)))
        self.assertEqual(trailers.response.content, b"chunked body")

    def test_https(self) -> None:
        """Both TLS connection records, with their certificates, and is_replay."""
        (flow,) = read_flows(FIXTURES / "https.mitm")
        client, server = flow.client_conn, flow.server_conn
        self.assertEqual(flow.request.url, "https://secure.example/account")
        self.assertEqual(flow.request.cookies["session"], "s3cr3t")
        self.assertEqual(flow.is_replay, "request")
        self.assertTrue(client.tls and client.tls_established)
        self.assertEqual((client.sni, client.tls_version, client.cipher), ("secure.example", "TLSv1.3", "TLS_AES_256_GCM_SHA384"))
        self.assertEqual((client.alpn, client.alpn_offers), (b"http/1.1", [b"h2", b"http/1.1"]))
        self.assertEqual(client.cipher_list, ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"])
        self.assertEqual(str(client.proxy_mode), "regular")
        assert client.mitmcert is not None
        self.assertEqual(client.mitmcert.cn, "secure.example")
        self.assertEqual(server.timestamp_tls_setup, T0 + 5.25)
        self.assertEqual([cert.cn for cert in server.certificate_list], ["secure.example", "Fixture Origin CA"])
        self.assertEqual([name.value for name in server.certificate_list[0].altnames], ["secure.example", "www.secure.example"])
        self.assertEqual(server.certificate_list[0].notafter.year, 2027)

    def test_websocket(self) -> None:
        """Messages with their types, directions, flags and times; the close details."""
        (flow,) = read_flows(FIXTURES / "websocket.mitm")
        self.assertEqual(flow.response.status_code, 101)
        messages = flow.websocket.messages
        self.assertEqual(
            [(m.type, m.from_client, m.content, m.dropped, m.injected) for m in messages],
            [
                (Opcode.TEXT, True, "hello ✓".encode(), False, False),
                (Opcode.BINARY, False, b"\x00\x01\xfe\xff", False, False),
                (Opcode.TEXT, True, b"dropped text", True, False),
                (Opcode.TEXT, False, b"injected text", False, True),
            ],
        )
        self.assertEqual(messages[0].text, "hello ✓")
        self.assertEqual(messages[1].timestamp, T0 + 6.8)
        websocket = flow.websocket
        self.assertEqual((websocket.closed_by_client, websocket.close_code, websocket.close_reason), (True, 1001, "going away"))
        self.assertEqual(websocket.timestamp_end, T0 + 7.5)

    def test_tcp(self) -> None:
        """TCP flows with their messages; the second ended in an error."""
        ended, failed = read_flows(FIXTURES / "tcp.mitm")
        self.assertIsInstance(ended, TCPFlow)
        self.assertEqual([(m.from_client, m.content, m.timestamp) for m in ended.messages], [
            (True, b"HELO fixture\r\n", T0 + 7.3), (False, b"250 hello\r\n\x00\xff", T0 + 7.4),
        ])
        self.assertIsNone(ended.error)
        self.assertEqual(failed.error.msg, "Connection reset by peer")

    def test_rewrite_is_byte_identical(self) -> None:
        """Reading a mitmproxy file and writing its flows again gives the very same bytes."""
        for name in ("http.mitm", "https.mitm", "websocket.mitm", "tcp.mitm"):
            self.assertEqual(write_flows(read_flows(FIXTURES / name)), (FIXTURES / name).read_bytes(), name)


class RoundTripTests(SynchronousTestCase):
    """What L{io.FlowWriter} writes, L{io.FlowReader} reads back unchanged."""

    def test_sample_flows(self) -> None:
        """Every sample flow comes back with the same state and type."""
        flows = sample_flows()
        loaded = list(io.FlowReader(stdio.BytesIO(write_flows(flows))).stream())
        self.assertEqual([type(f) for f in loaded], [HTTPFlow, HTTPFlow, HTTPFlow, TCPFlow])
        self.assertEqual([f.get_state() for f in loaded], [f.get_state() for f in flows])

    def test_loaded_values(self) -> None:
        """Loaded flows have usable values: addresses as tuples, certificates, messages."""
        get, post, websocket, tcp = io.FlowReader(stdio.BytesIO(write_flows(sample_flows()))).stream()
        self.assertEqual(post.client_conn.peername, ("::1", 40002, 0, 0))
        self.assertEqual(post.server_conn.certificate_list[0], Cert(origin_certificate("secure.test").cert))
        self.assertEqual(post.request.raw_content, b"a=1&b=\xff")
        self.assertEqual(get.metadata["nested"], {"list": [1, "two", b"three"]})
        self.assertEqual(get.response.trailers["x-sum"], "1")
        self.assertEqual(websocket.websocket.messages[1].type, Opcode.BINARY)
        self.assertEqual(tcp.server_conn.via, ("http", ("upstream.test", 3128)))
        self.assertFalse(get.live)

    def test_appending(self) -> None:
        """A file written in two goes (as C{+PATH} does) reads as one sequence of flows."""
        flows = sample_flows()
        data = write_flows(flows[:2]) + write_flows(flows[2:])
        self.assertEqual([f.id for f in io.FlowReader(stdio.BytesIO(data)).stream()], [f.id for f in flows])

    def test_unsaveable_metadata(self) -> None:
        """A flow holding an object in its metadata is refused whole: nothing is written."""
        flow = sample_flows()[0]
        flow.metadata["handle"] = object()
        file = stdio.BytesIO()
        self.assertRaises(ValueError, io.FlowWriter(file).add, flow)
        self.assertEqual(file.getvalue(), b"")

    def test_filtered_writer(self) -> None:
        """FilteredFlowWriter writes what its filter accepts, and everything without one."""
        flows = sample_flows()
        file = stdio.BytesIO()
        io.FilteredFlowWriter(file, lambda flow: isinstance(flow, TCPFlow)).add(flows[0])
        io.FilteredFlowWriter(file, lambda flow: isinstance(flow, TCPFlow)).add(flows[3])
        io.FilteredFlowWriter(file, None).add(flows[1])
        self.assertEqual([f.id for f in io.FlowReader(stdio.BytesIO(file.getvalue())).stream()], [flows[3].id, flows[1].id])


class ReadErrorTests(SynchronousTestCase):
    """A file that is not a valid flow file gives a FlowReadException saying where and why."""

    def assert_read_error(self, data: bytes, expected: str) -> list[Flow]:
        """Reading C{data} fails with C{expected} in the message; return the flows read before."""
        flows: list[Flow] = []
        with self.assertRaises(FlowReadException) as caught:
            for flow in io.FlowReader(stdio.BytesIO(data)).stream():
                flows.append(flow)
        self.assertIn(expected, str(caught.exception))
        return flows

    def test_empty_file(self) -> None:
        """An empty file holds no flows."""
        self.assertEqual(list(io.FlowReader(stdio.BytesIO(b"")).stream()), [])

    def test_truncated(self) -> None:
        """A file cut short yields the flows before the cut, then names the broken flow."""
        data = write_flows(sample_flows()[:2])
        flows = self.assert_read_error(data[:-10], "flow 2: not a tnetstring: truncated")
        self.assertEqual(len(flows), 1)

    def test_har(self) -> None:
        """A HAR (JSON) file is named as such, with or without a BOM."""
        self.assert_read_error(b'{"log": {"entries": []}}', "JSON file (HAR?)")
        self.assert_read_error(b'\xef\xbb\xbf{"log": {}}', "JSON file (HAR?)")

    def test_not_a_flow(self) -> None:
        """Plain text, or a tnetstring that is not a flow, is refused."""
        self.assert_read_error(b"hello world\n", "flow 1: not a tnetstring: bad length prefix")
        self.assert_read_error(tnetstring.dumps([1, 2]), "flow 1: expected a flow, found a list")

    def test_unsupported_flow_type(self) -> None:
        """A DNS flow (which twisted_mitm does not have) is named."""
        state = read_flows(FIXTURES / "tcp.mitm")[0].get_state()
        state["type"] = "dns"
        self.assert_read_error(tnetstring.dumps(state), "unsupported flow type: 'dns'")

    def test_bad_field(self) -> None:
        """A missing, unknown or ill-typed field is named."""
        state = sample_flows()[3].get_state()
        missing = copy.deepcopy(state)
        del missing["client_conn"]["sni"]
        self.assert_read_error(tnetstring.dumps(missing), "Client state has no 'sni'")
        unknown = copy.deepcopy(state)
        unknown["surprise"] = 1
        self.assert_read_error(tnetstring.dumps(unknown), "unknown fields: surprise")
        ill_typed = copy.deepcopy(state)
        ill_typed["server_conn"]["tls"] = "yes"
        self.assert_read_error(tnetstring.dumps(ill_typed), "tls: expected bool")

    def test_versions(self) -> None:
        """Versions that are not read are named, with the range that is."""
        state = sample_flows()[3].get_state()
        for version, expected in (
            (22, "flow format version 22 is newer than twisted_mitm reads (up to 21)"),
            (11, "flow format version 11 is older than twisted_mitm reads (12 to 21)"),
            ((0, 11), "flow format version 0.11 is older"),
        ):
            state["version"] = version
            self.assert_read_error(tnetstring.dumps(state), expected)


def downgrade_to_version_12(state: dict[str, Any]) -> dict[str, Any]:
    """A version 21 WebSocket flow state as mitmproxy 7 would have saved it (version 12).

    Each edit undoes one of mitmproxy's migration steps; a few values are chosen so that
    the steps that repair old data have something to repair.
    """
    client, server = state["client_conn"], state["server_conn"]
    client["tls_version"] = "QUIC"  # 20 -> 21 renames it
    client["state"] = server["state"] = 0  # 19 -> 20 drops it
    client["address"] = client.pop("peername")  # 18 -> 19 renames ...
    client["tls_extensions"] = []
    server["ip_address"] = server.pop("peername")
    server["source_address"] = server.pop("sockname")
    server["via2"] = server.pop("via")
    server["sni"] = True  # ... and turns a True SNI into the host name
    for connection in (client, server):
        connection["tls_established"] = connection["timestamp_tls_setup"] is not None
        connection["cipher_name"] = connection.pop("cipher")
        del connection["transport_protocol"]
    del client["proxy_mode"]  # 17 -> 18 adds it
    state["mode"] = "regular"  # 16 -> 17 drops it
    del state["timestamp_created"]  # 15 -> 16 adds it
    state["websocket"]["messages"] = [message[:5] for message in state["websocket"]["messages"]]  # 14 -> 15
    del state["comment"]  # 13 -> 14 adds it, and repairs a missing response start
    state["response"]["timestamp_start"] = None
    state["marked"] = True  # 12 -> 13 makes it a string
    state["version"] = 12
    return state


class CompatTests(SynchronousTestCase):
    """Older flow format versions are migrated as mitmproxy migrates them."""

    def test_version_12_to_21(self) -> None:
        """A version 12 flow goes through every step and loads."""
        (original,) = read_flows(FIXTURES / "websocket.mitm")
        expected = original.get_state()
        state = downgrade_to_version_12(copy.deepcopy(expected))
        (flow,) = io.FlowReader(stdio.BytesIO(tnetstring.dumps(state))).stream()
        migrated = flow.get_state()
        self.assertEqual(migrated["version"], 21)
        self.assertEqual(migrated["marked"], ":default:")
        self.assertEqual(migrated["comment"], "")
        self.assertEqual(migrated["timestamp_created"], expected["request"]["timestamp_start"])
        self.assertEqual(migrated["client_conn"]["tls_version"], "QUICv1")
        self.assertEqual(migrated["server_conn"]["sni"], "ws.example")
        request_end = expected["request"]["timestamp_end"]
        self.assertEqual((flow.response.timestamp_start, flow.response.timestamp_end), (request_end, request_end + 1))
        self.assertEqual([m.injected for m in flow.websocket.messages], [False] * 4)
        # Everything else comes back as it was.
        for key in ("marked", "comment", "timestamp_created", "response"):
            del migrated[key], expected[key]
        expected["client_conn"]["tls_version"] = "QUICv1"
        expected["server_conn"]["sni"] = "ws.example"
        expected["websocket"]["messages"] = [(*m[:5], False) for m in expected["websocket"]["messages"]]
        self.assertEqual(jsonable(migrated), jsonable(expected))

    def test_from_each_version(self) -> None:
        """A state can start at any version from 12 and reach 21."""
        (original,) = read_flows(FIXTURES / "websocket.mitm")
        version_12 = downgrade_to_version_12(original.get_state())
        for start in range(compat.OLDEST_VERSION, 22):
            state = copy.deepcopy(version_12)
            for step in range(compat.OLDEST_VERSION, start):
                compat._STEPS[step](state)
            state["version"] = start
            self.assertEqual(compat.migrate_flow(state)["version"], 21, start)

    def test_tcp_flow_without_request(self) -> None:
        """A TCP flow takes its creation time from its client connection."""
        (flow, _) = read_flows(FIXTURES / "tcp.mitm")
        state = flow.get_state()
        del state["timestamp_created"]
        state["version"] = 15
        self.assertEqual(compat.migrate_flow(state)["timestamp_created"], T0 + 7)


def mitmproxy_python() -> str:
    """The Python of a mitmproxy 12 install, or a SkipTest saying how to provide one."""
    configured = os.environ.get("TWISTED_MITM_MITMPROXY_PYTHON")
    candidate = Path(configured) if configured else CHECKOUT / ".venv-bench-mitmproxy" / "bin" / "python"
    if not candidate.exists():
        raise SkipTest(
            "NO MITMPROXY: interoperability with real mitmproxy 12 was NOT tested. Set "
            "TWISTED_MITM_MITMPROXY_PYTHON to the python of a virtualenv with mitmproxy 12, or "
            "create .venv-bench-mitmproxy in the checkout (tests/fixtures/flows/README.md says how)."
        )
    return str(candidate)


def run_mitmproxy_script(*arguments: str) -> Any:
    """Run C{mitmproxy12.py} under mitmproxy's Python; its JSON output."""
    result = subprocess.run(
        [mitmproxy_python(), str(FIXTURES / "mitmproxy12.py"), *arguments],
        capture_output=True,
        timeout=60,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    if result.returncode != 0:
        raise AssertionError(f"mitmproxy12.py {' '.join(arguments)} failed:\n{result.stderr.decode(errors='replace')}")
    return json.loads(result.stdout)


class MitmproxyInteropTests(SynchronousTestCase):
    """Real mitmproxy 12 and twisted_mitm read each other's flow files, every field intact."""

    def test_mitmproxy_reads_our_flows(self) -> None:
        """mitmproxy loads the flows twisted_mitm wrote, to the same state."""
        flows = sample_flows()
        path = Path(self.mktemp()).absolute()
        path.write_bytes(write_flows(flows))
        theirs = run_mitmproxy_script("states", str(path))
        self.assertEqual(theirs, [jsonable(flow.get_state()) for flow in flows])

    def test_we_read_mitmproxy_flows(self) -> None:
        """twisted_mitm loads the flows mitmproxy writes now, to the state mitmproxy wrote."""
        folder = Path(self.mktemp()).absolute()
        folder.mkdir()
        written = run_mitmproxy_script("write", str(folder))
        self.assertEqual(sorted(written), ["http.mitm", "https.mitm", "tcp.mitm", "websocket.mitm"])
        for name, states in written.items():
            self.assertEqual([jsonable(flow.get_state()) for flow in read_flows(folder / name)], states, name)

