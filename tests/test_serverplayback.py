# -*- test-case-name: tests.test_serverplayback -*-
"""Tests for L{twisted_mitm.addons.serverplayback}: C{server_replay} and its options."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import curl, make_master, respond, start_proxy, start_raw_origin, wait_until
from tests.test_flow import make_connections
from tests.test_io import read_flows
from twisted_mitm.addons.serverplayback import MatchRules
from twisted_mitm.hooks import RequestHook
from twisted_mitm.http import HTTPFlow, Request, Response
from twisted_mitm.master import Master


def flow_for(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None, answer: bytes = b"") -> HTTPFlow:
    """A flow whose request is C{method url} with C{body}; with a response carrying C{answer}."""
    flow = HTTPFlow(*make_connections())
    flow.request = Request.make(method, url, body, headers or {})
    flow.response = Response.make(200, answer)
    return flow


def key(rules: MatchRules, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    return rules.key(flow_for(method, url, body, headers).request)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}

#: (rules, first request, second request, whether they match): each row one rule of mitmproxy's.
MATCHING = [
    (MatchRules(), ("GET", "http://a.test/p?x=1"), ("GET", "http://a.test/p?x=1"), True),
    (MatchRules(), ("GET", "http://a.test/p"), ("POST", "http://a.test/p"), False),
    (MatchRules(), ("GET", "http://a.test/p"), ("GET", "https://a.test:80/p"), False),
    (MatchRules(), ("GET", "http://a.test/p"), ("GET", "http://a.test/q"), False),
    (MatchRules(), ("GET", "http://a.test/p?x=1"), ("GET", "http://a.test/p?x=2"), False),
    (MatchRules(), ("GET", "http://a.test/p?x=1&y=2"), ("GET", "http://a.test/p?y=2&x=1"), False),
    (MatchRules(), ("GET", "http://a.test/p"), ("GET", "http://b.test/p"), False),
    (MatchRules(ignore_host=True), ("GET", "http://a.test/p"), ("GET", "http://b.test/p"), True),
    (MatchRules(), ("GET", "http://a.test:81/p"), ("GET", "http://a.test:82/p"), False),
    (MatchRules(ignore_port=True), ("GET", "http://a.test:81/p"), ("GET", "http://a.test:82/p"), True),
    (MatchRules(ignore_params=("t",)), ("GET", "http://a.test/p?x=1&t=5"), ("GET", "http://a.test/p?t=6&x=1"), True),
    (MatchRules(ignore_params=("t",)), ("GET", "http://a.test/p?x=1"), ("GET", "http://a.test/p?x=2"), False),
    (MatchRules(), ("POST", "http://a.test/p", b"one"), ("POST", "http://a.test/p", b"two"), False),
    (MatchRules(ignore_content=True), ("POST", "http://a.test/p", b"one"), ("POST", "http://a.test/p", b"two"), True),
    (
        MatchRules(ignore_payload_params=("nonce",)),
        ("POST", "http://a.test/p", b"a=1&nonce=5", FORM),
        ("POST", "http://a.test/p", b"a=1&nonce=6", FORM),
        True,
    ),
    (
        MatchRules(ignore_payload_params=("nonce",)),
        ("POST", "http://a.test/p", b"a=1&nonce=5", FORM),
        ("POST", "http://a.test/p", b"a=2&nonce=5", FORM),
        False,
    ),
    (
        MatchRules(ignore_payload_params=("nonce",)),
        ("POST", "http://a.test/p", b"a=1&nonce=5"),
        ("POST", "http://a.test/p", b"a=1&nonce=6"),
        False,
    ),
    (MatchRules(), ("GET", "http://a.test/p", b"", {"X-A": "1"}), ("GET", "http://a.test/p", b"", {"X-A": "2"}), True),
    (
        MatchRules(use_headers=("x-a",)),
        ("GET", "http://a.test/p", b"", {"X-A": "1"}),
        ("GET", "http://a.test/p", b"", {"X-A": "2"}),
        False,
    ),
    (
        MatchRules(use_headers=("x-a",)),
        ("GET", "http://a.test/p", b"", {"X-A": "1", "X-B": "1"}),
        ("GET", "http://a.test/p", b"", {"X-A": "1", "X-B": "2"}),
        True,
    ),
]


class MatchRulesTests(SynchronousTestCase):
    """Requests match exactly when mitmproxy's server replay would match them."""

    def test_table(self) -> None:
        """Each row of L{MATCHING} matches (or not) as it says."""
        for rules, first, second, same in MATCHING:
            with self.subTest(rules=rules, first=first, second=second):
                self.assertEqual(key(rules, *first) == key(rules, *second), same)


class ServerPlaybackAddonTests(SynchronousTestCase):
    """The addon answers from recorded flows in order, and handles the rest as told."""

    def master(self, *options: str) -> Master:
        master = make_master(options)
        recorded = [
            flow_for("GET", "http://a.test/p", answer=b"first"),
            flow_for("GET", "http://a.test/p", answer=b"second"),
            flow_for("GET", "http://a.test/other", answer=b"other"),
        ]
        recorded[0].response.headers["Date"] = "Mon, 01 Jan 2024 00:00:00 GMT"  # type: ignore[union-attr]
        recorded[0].response.timestamp_start = 1704067200.0  # type: ignore[union-attr]
        master.commands.call("replay.server", recorded)
        return master

    def request(self, master: Master, url: str = "http://a.test/p") -> HTTPFlow:
        flow = flow_for("GET", url)
        flow.response = None
        flow.live = True
        self.successResultOf(master.addons.trigger(RequestHook(flow)))
        return flow

    def test_in_order_then_used_up(self) -> None:
        """Matching responses answer in recorded order, each once; the count goes down."""
        master = self.master()
        self.assertEqual(master.commands.call("replay.server.count"), 3)
        first, second, third = (self.request(master) for _ in range(3))
        self.assertEqual((first.response.content, second.response.content), (b"first", b"second"))  # type: ignore[union-attr]
        self.assertEqual((first.is_replay, third.response), ("response", None))
        self.assertEqual(master.commands.call("replay.server.count"), 1)

    def test_reuse(self) -> None:
        """With server_replay_reuse the first response answers every time."""
        master = self.master("server_replay_reuse=true")
        answers = [self.request(master).response.content for _ in range(3)]  # type: ignore[union-attr]
        self.assertEqual(answers, [b"first"] * 3)

    def test_refresh(self) -> None:
        """Dates move forward unless server_replay_refresh is off."""
        refreshed = self.request(self.master()).response.headers["Date"]  # type: ignore[union-attr]
        kept = self.request(self.master("server_replay_refresh=false")).response.headers["Date"]  # type: ignore[union-attr]
        self.assertNotIn("2024", refreshed)
        self.assertEqual(kept, "Mon, 01 Jan 2024 00:00:00 GMT")

    def test_extra(self) -> None:
        """Unmatched requests are forwarded, answered with a status, or killed."""
        self.assertIsNone(self.request(self.master(), "http://a.test/none").response)
        answered = self.request(self.master("server_replay_extra=404"), "http://a.test/none")
        self.assertEqual((answered.response.status_code, answered.is_replay), (404, None))  # type: ignore[union-attr]
        killed = self.request(self.master("server_replay_extra=kill"), "http://a.test/none")
        self.assertEqual(killed.error.msg, "Connection killed.")  # type: ignore[union-attr]

    def test_deprecated_names(self) -> None:
        """server_replay_kill_extra and server_replay_nopop set their successors."""
        master = self.master("server_replay_kill_extra=true", "server_replay_nopop=true")
        self.assertEqual((master.options.server_replay_extra, master.options.server_replay_reuse), ("kill", True))

    def test_stop(self) -> None:
        """replay.server.stop forgets the recorded flows."""
        master = self.master()
        master.commands.call("replay.server.stop")
        self.assertIsNone(self.request(master).response)


class ServerReplayTrafficTests(TestCase):
    """Flows recorded with -w are served with the origin down, streamed (kept) bodies byte-identical."""

    timeout = 30

    async def test_record_then_serve(self) -> None:
        """A small and a streamed (kept) response recorded with -w come back from the replay, byte for
        byte, and the origin is not asked again; an unrecorded request gets server_replay_extra's 404."""
        path = Path(self.mktemp()).absolute()
        big = bytes(range(256)) * 8192
        origin = start_raw_origin(self, _by_path({b"/small": b"small body", b"/big": big}))
        recording = start_proxy(self, options=["stream_large_bodies=64k", "store_streamed_bodies=true", f"save_stream_file={path}"])
        for name in ("small", "big"):
            await curl("-x", recording.url, f"{origin.url}/{name}")
        await wait_until(lambda: path.exists() and len(read_flows(path)) == 2, what="two saved flows")
        asked = len(origin.requests)
        replaying = start_proxy(self, options=[f"server_replay={path}", "server_replay_extra=404"])
        missing, _, _ = await curl("-x", replaying.url, "-w", "%{http_code}", f"{origin.url}/other")
        small, _, _ = await curl("-x", replaying.url, f"{origin.url}/small")
        large, _, _ = await curl("-x", replaying.url, f"{origin.url}/big")
        self.assertEqual(small, b"small body")
        self.assertEqual(hashlib.sha256(large).hexdigest(), hashlib.sha256(big).hexdigest())
        self.assertEqual(missing, b"404")
        self.assertEqual(len(origin.requests), asked)


def _by_path(bodies: dict[bytes, bytes]) -> Any:
    """A raw origin handler answering each path with its body."""

    def handler(protocol: Any, head: bytes) -> None:
        respond(200, bodies[head.split(b" ")[1]])(protocol, head)

    return handler
