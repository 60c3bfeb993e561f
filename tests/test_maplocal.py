# -*- test-case-name: tests.test_maplocal -*-
"""Tests for L{twisted_mitm.addons.maplocal}: answering requests from local files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet.task import LoopingCall
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow
from tests.support import curl, rss, start_proxy
from twisted_mitm.addons.maplocal import MapLocal, MapLocalSpec, file_candidates, parse_map_local_spec, safe_join
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.http import HTTPFlow, Request
from twisted_mitm.master import Master
from twisted_mitm.options import default_options
from twisted_mitm.utils.spec import match_all


def get(url: str) -> HTTPFlow:
    """A live flow for a GET of C{url}."""
    flow = request_flow()
    flow.request = Request.make("GET", url)
    flow.live = True
    return flow


def make_tree(root: str) -> Path:
    """A directory with an index.html, a style sheet, a sub-directory with its own index, and a name with a space."""
    base = Path(root)
    (base / "sub").mkdir(parents=True)
    (base / "index.html").write_bytes(b"<h1>home</h1>")
    (base / "style.css").write_bytes(b"body {}")
    (base / "sub" / "index.html").write_bytes(b"<h1>sub</h1>")
    (base / "a b.txt").write_bytes(b"spaced")
    return base.resolve()


class CandidateTests(SynchronousTestCase):
    """Which files may answer a URL under a directory rule (mitmproxy's order)."""

    def candidates(self, url: str, regex: str) -> list[str]:
        return [str(path) for path in file_candidates(url, MapLocalSpec(match_all, regex, Path("/tmp")))]

    def test_rest_of_url(self) -> None:
        """What follows the match names the file, without the query; nothing names index.html."""
        self.assertEqual(self.candidates("https://example.com/foo", "example.com/foo"), ["/tmp/index.html"])
        self.assertEqual(self.candidates("https://example.com/foo/bar/baz?x=1", "example.com/foo"), ["/tmp/bar/baz", "/tmp/bar/baz/index.html"])

    def test_group(self) -> None:
        """With a group in the regex, the group names the file."""
        self.assertEqual(self.candidates("https://example.com/foo/bar", "example.com/(foo/bar)"), ["/tmp/foo/bar", "/tmp/foo/bar/index.html"])

    def test_decoded_then_escaped(self) -> None:
        """The name is URL-decoded; when it holds unusual characters, their C{_} form is tried too."""
        self.assertEqual(
            self.candidates("https://example.com/foo/bar%20baz", "example.com/foo"),
            ["/tmp/bar baz", "/tmp/bar baz/index.html", "/tmp/bar_baz", "/tmp/bar_baz/index.html"],
        )

    def test_traversal_refused(self) -> None:
        """A name that could climb out of the directory yields no candidate at all."""
        self.assertEqual(self.candidates("https://example.com/foo/%2e%2e/etc/passwd", "example.com/foo"), [])
        self.assertEqual(self.candidates("https://example.com/foo/a/../../x", "example.com/foo"), [])

    def test_safe_join(self) -> None:
        """Absolute names and C{..} components are refused."""
        self.assertEqual(safe_join(Path("/srv"), "a/b"), Path("/srv/a/b"))
        self.assertRaises(ValueError, safe_join, Path("/srv"), "/etc/passwd")
        self.assertRaises(ValueError, safe_join, Path("/srv"), "a/../../b")


class ParseTests(SynchronousTestCase):
    """L{parse_map_local_spec}."""

    def test_path_must_exist(self) -> None:
        """A missing file or directory is refused at once."""
        with self.assertRaises(ValueError) as caught:
            parse_map_local_spec("|example.com|/no/such/dir")
        self.assertIn("no such file or directory: /no/such/dir", str(caught.exception))

    def test_bad_regex(self) -> None:
        """An invalid URL regex is refused."""
        self.assertRaises(ValueError, parse_map_local_spec, "|ex(|/tmp")


class MapLocalTests(SynchronousTestCase):
    """The addon's request hook."""

    def setUp(self) -> None:
        self.root = make_tree(self.mktemp())
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = MapLocal()
        self.master.addons.add(self.addon)

    def answer(self, url: str, *rules: str) -> HTTPFlow:
        self.master.options.set(*(f"map_local={rule}" for rule in rules))
        flow = get(url)
        self.addon.request(flow)
        return flow

    def test_directory(self) -> None:
        """Files under a directory, typed by extension; a directory's index.html."""
        css = self.answer("http://example.com/static/style.css", f"|example.com/static|{self.root}")
        assert css.response is not None
        self.assertEqual((css.response.status_code, css.response.content, css.response.headers["content-type"]), (200, b"body {}", "text/css"))
        sub = self.answer("http://example.com/static/sub/", f"|example.com/static|{self.root}")
        assert sub.response is not None
        self.assertEqual((sub.response.content, sub.response.headers["content-type"]), (b"<h1>sub</h1>", "text/html"))
        spaced = self.answer("http://example.com/static/a%20b.txt", f"|example.com/static|{self.root}")
        assert spaced.response is not None
        self.assertEqual(spaced.response.content, b"spaced")

    def test_single_file(self) -> None:
        """A rule naming a file answers every matching URL with it."""
        flow = self.answer("http://example.com/anything?x", f"|example.com|{self.root}/style.css")
        assert flow.response is not None
        self.assertEqual(flow.response.content, b"body {}")

    def test_missing_is_404(self) -> None:
        """A matching URL whose file does not exist gets 404."""
        flow = self.answer("http://example.com/static/nope.js", f"|example.com/static|{self.root}")
        assert flow.response is not None
        self.assertEqual(flow.response.status_code, 404)

    def test_traversal_not_served(self) -> None:
        """A URL climbing out of the directory has no candidate: nothing local answers it and,
        as in mitmproxy, it goes on to the server."""
        secret = self.root.parent / "secret.txt"
        secret.write_bytes(b"secret")
        flow = self.answer(f"http://example.com/static/%2e%2e/{secret.name}", f"|example.com/static|{self.root}")
        self.assertIsNone(flow.response)

    def test_not_matching(self) -> None:
        """Another URL, or a filter that does not match, goes to the server."""
        self.assertIsNone(self.answer("http://other.com/style.css", f"|example.com|{self.root}").response)
        self.assertIsNone(self.answer("http://example.com/style.css", f"|~m POST|example.com|{self.root}").response)

    def test_first_rule_with_a_file_wins(self) -> None:
        """Rules are tried in order; one whose candidates do not exist lets the next answer."""
        flow = self.answer("http://example.com/style.css", f"|example.com|{self.root}/sub", f"|example.com|{self.root}")
        assert flow.response is not None
        self.assertEqual(flow.response.content, b"body {}")

    def test_large_file_streamed(self) -> None:
        """A file above stream_large_bodies is not read: the response names it in body_file."""
        self.master.options.set("stream_large_bodies=4")
        flow = self.answer("http://example.com/static/style.css", f"|example.com/static|{self.root}")
        assert flow.response is not None
        self.assertEqual((flow.response.raw_content, flow.response.body_file), (b"", str(self.root / "style.css")))
        self.assertEqual(flow.response.headers["content-length"], "7")

    def test_bad_rule(self) -> None:
        """A rule whose path is missing stops with an OptionsError naming it."""
        with self.assertRaises(OptionsError) as caught:
            self.master.options.set("map_local=|x|/no/such/path")
        self.assertTrue(str(caught.exception).startswith("map_local: cannot parse '|x|/no/such/path': "))


BIG = 64 << 20


class LoopbackTests(TestCase):
    """C{map_local} with curl through the proxy."""

    async def test_directory_served(self) -> None:
        """A file from the directory with its type; a missing one is a 404."""
        root = make_tree(self.mktemp())
        proxy = start_proxy(self, options=[f"map_local=|example.com/static|{root}"])
        out, err, code = await curl("-x", proxy.url, "-w", "\n%{http_code} %{content_type}", "http://example.com/static/style.css")
        self.assertEqual((code, out), (0, b"body {}\n200 text/css"), err)
        out, err, code = await curl("-x", proxy.url, "-o", "/dev/null", "-w", "%{http_code}", "http://example.com/static/missing")
        self.assertEqual(out, b"404")

    async def test_64_mib_file_streamed_from_disk(self) -> None:
        """A 64 MiB file is sent whole while the process's RSS grows by far less than its size."""
        root = Path(self.mktemp())
        root.mkdir()
        block = os.urandom(1 << 20)
        with open(root / "big.bin", "wb") as f:
            for _ in range(BIG >> 20):
                f.write(block)
        self.addCleanup(os.remove, root / "big.bin")
        proxy = start_proxy(self, options=[f"map_local=|example.com/files|{root}"])
        before = peak = rss()

        def sample() -> None:
            nonlocal peak
            peak = max(peak, rss())

        sampler = LoopingCall(sample)
        sampler.start(0.02)
        self.addCleanup(lambda: sampler.running and sampler.stop())
        out, err, code = await curl("-x", proxy.url, "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{content_type}", "http://example.com/files/big.bin")
        sampler.stop()
        print(f"\nmap_local 64 MiB: RSS peak +{(peak - before) / 2**20:.1f} MiB", file=sys.stderr)
        self.assertEqual((code, out), (0, b"200 %d application/octet-stream" % BIG), err)
        self.assertLess(peak - before, 16 << 20)
