# -*- test-case-name: tests.test_readfile -*-
"""Tests for L{twisted_mitm.addons.readfile}: C{rfile} (C{-r}) runs saved flows through the addons."""

from __future__ import annotations

from pathlib import Path
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import start_proxy, wait_until
from tests.test_io import FIXTURES, read_flows, sample_flows, write_flows
from twisted_mitm.addons.readfile import ReadFile, count_flows
from twisted_mitm.exceptions import FlowReadException, OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.master import Master
from twisted_mitm.options import default_options

HOOKS = (
    "requestheaders", "request", "responseheaders", "response", "error",
    "websocket_start", "websocket_message", "websocket_end", "tcp_start", "tcp_message", "tcp_end", "tcp_error",
)


class FlowHookRecorder:
    """An addon recording C{(hook name, flow id)} for every flow hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        for name in HOOKS:
            setattr(self, name, lambda flow, name=name: self.calls.append((name, flow.id)))


def broken_copy(test: SynchronousTestCase, name: str, cut: int) -> str:
    """A fixture file with its last C{cut} bytes cut off."""
    path = Path(test.mktemp()).absolute()
    path.write_bytes((FIXTURES / name).read_bytes()[:-cut])
    return str(path)


class CheckTests(SynchronousTestCase):
    """A flow file is checked whole when C{rfile} is set: mistakes are one line, before start."""

    def test_count(self) -> None:
        """count_flows reads a whole file."""
        self.assertEqual(count_flows(str(FIXTURES / "http.mitm")), 4)

    def test_refusals(self) -> None:
        """A missing, corrupt or foreign file is refused naming the file and the problem."""
        master = Master(default_options(), shutdown=lambda: None)
        master.addons.add(ReadFile())
        json_file = Path(self.mktemp()).absolute()
        json_file.write_bytes(b'{"log": {}}')
        cases = [
            ("/no/such/flows.mitm", "rfile: cannot read /no/such/flows.mitm: No such file or directory"),
            (broken_copy(self, "http.mitm", 5), "is not a valid flow file: flow 4: not a tnetstring: truncated"),
            (str(json_file), "is not a valid flow file: this is a JSON file (HAR?)"),
        ]
        for path, expected in cases:
            with self.assertRaises(OptionsError) as caught:
                master.options.rfile = path
            self.assertIn(expected, str(caught.exception))
            self.assertIsNone(master.options.rfile)

    def test_unreadable_later(self) -> None:
        """A file that breaks after the check: the flows before the break are loaded, then an error."""
        master = Master(default_options(), shutdown=lambda: None)
        recorder = FlowHookRecorder()
        master.addons.add(recorder)
        path = broken_copy(self, "tcp.mitm", 5)
        failure = self.failureResultOf(Deferred.fromCoroutine(ReadFile().load_flows_from_path(path)), FlowReadException)
        self.assertIn("(after 1 flows)", str(failure.value))
        self.assertEqual({flow_id for _, flow_id in recorder.calls}, {"f0000000-0000-4000-8000-000000000007"})


class ReadFileProxyTests(TestCase):
    """C{rfile} on a running proxy: hooks in order, then a stop unless C{keepserving}."""

    async def test_hooks_in_order_then_stop(self) -> None:
        """Each fixture flow gets its hooks, one flow after the other, and then the proxy stops."""
        recorder = FlowHookRecorder()
        proxy = start_proxy(self, options=[f"rfile={FIXTURES / 'http.mitm'}"], addons=[recorder])
        await wait_until(lambda: proxy.shutdowns, 10, "the proxy to stop after reading")
        ids = [flow.id for flow in read_flows(FIXTURES / "http.mitm")]
        with_response = ["requestheaders", "request", "responseheaders", "response"]
        self.assertEqual(recorder.calls, [
            *[(name, ids[0]) for name in with_response],
            *[(name, ids[1]) for name in with_response],
            *[(name, ids[2]) for name in ("requestheaders", "request", "error")],
            *[(name, ids[3]) for name in with_response],
        ])

    async def test_websocket_and_tcp(self) -> None:
        """WebSocket and TCP flows get their message hooks, one per message."""
        recorder = FlowHookRecorder()
        paths = [FIXTURES / "websocket.mitm", FIXTURES / "tcp.mitm"]
        combined = Path(self.mktemp()).absolute()
        combined.write_bytes(b"".join(path.read_bytes() for path in paths))
        proxy = start_proxy(self, options=[f"rfile={combined}"], addons=[recorder])
        await wait_until(lambda: proxy.shutdowns, 10, "the proxy to stop after reading")
        names = [name for name, _ in recorder.calls]
        self.assertEqual(names, [
            "requestheaders", "request", "responseheaders", "response",
            "websocket_start", *["websocket_message"] * 4, "websocket_end",
            "tcp_start", "tcp_message", "tcp_message", "tcp_end",
            "tcp_start", "tcp_message", "tcp_message", "tcp_error",
        ])

    async def test_keepserving(self) -> None:
        """With keepserving the proxy goes on after reading."""
        proxy = start_proxy(self, options=[f"rfile={FIXTURES / 'tcp.mitm'}", "keepserving=true"])
        readfile = proxy.master.addons.get("readfile")
        assert isinstance(readfile, ReadFile) and readfile.reading is not None
        await readfile.reading
        self.assertEqual(proxy.shutdowns, [])

    async def test_read_and_save(self) -> None:
        """-r IN -w OUT copies the flows: OUT holds the same bytes as IN."""
        flows = sample_flows()
        source, copy = Path(self.mktemp()).absolute(), Path(self.mktemp()).absolute()
        source.write_bytes(write_flows(flows))
        proxy = start_proxy(self, options=[f"rfile={source}", f"save_stream_file={copy}"])
        await wait_until(lambda: proxy.shutdowns, 10, "the proxy to stop after reading")
        await proxy.service.stopService()
        self.assertEqual(copy.read_bytes(), source.read_bytes())

    async def test_scripts_see_loaded_flows(self) -> None:
        """A script's change to a loaded flow is what gets saved (as with mitmdump -r -w)."""

        class Redact:
            def request(self, flow: Flow) -> None:
                flow.request.headers["cookie"] = "redacted"  # type: ignore[attr-defined]

        source, copy = FIXTURES / "https.mitm", Path(self.mktemp()).absolute()
        proxy = start_proxy(self, options=[f"rfile={source}", f"save_stream_file={copy}"], addons=[Redact()])
        await wait_until(lambda: proxy.shutdowns, 10, "the proxy to stop after reading")
        await proxy.service.stopService()
        (flow,) = read_flows(copy)
        self.assertEqual(flow.request.headers["cookie"], "redacted")
