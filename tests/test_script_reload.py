# -*- test-case-name: tests.test_script_reload -*-
"""Tests for L{twisted_mitm.addons.script}: the C{scripts} option, reloading changed files.

Time is a L{Clock}: each C{advance(1)} is one look at the files. Scripts record their
hooks in L{EVENTS}.
"""

from __future__ import annotations

import os
import sys
import textwrap

from twisted.internet.task import Clock, deferLater
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import curl, reactor, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.script import RELOAD_INTERVAL, ScriptLoader
from twisted_mitm.exceptions import AddonError, OptionsError
from twisted_mitm.hooks import DoneHook, RequestHook, RunningHook
from twisted_mitm.master import Master
from twisted_mitm.options import default_options

EVENTS: list[str] = []

VERSION = """
import tests.test_script_reload as record

def running():
    record.EVENTS.append("{name} running")

def done():
    record.EVENTS.append("{name} done")

def request(flow):
    flow.append("{name}")
"""


class ScriptLoaderTests(SynchronousTestCase):
    """Loading, reloading and unloading scripts as their files and the option change."""

    def setUp(self) -> None:
        EVENTS.clear()
        self.clock = Clock()
        self.master = Master(default_options(), shutdown=lambda: None)
        self.loader = ScriptLoader(self.clock)
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.modules = set(sys.modules)
        self.addCleanup(lambda: [sys.modules.pop(name) for name in set(sys.modules) - self.modules if name.startswith("__twisted_mitm_script__")])
        self.events = self.enterContext(capturedLogs())
        self.ticks = 0

    def write(self, source: str, name: str = "script.py") -> str:
        """Write a script, its modification time one tick later than anything before."""
        path = os.path.join(self.directory, name)
        with open(path, "w") as file:
            file.write(textwrap.dedent(source).lstrip())
        self.ticks += 1
        os.utime(path, (1_000_000 + self.ticks, 1_000_000 + self.ticks))
        return path

    def start(self, *paths: str) -> None:
        """The proxy starting with these scripts: add the loader, then the running hook."""
        self.master.options.scripts = list(paths)
        self.master.addons.add(self.loader)
        self.successResultOf(self.master.addons.trigger(RunningHook()))

    def handled_by(self) -> list[str]:
        flow: list[str] = []
        self.successResultOf(self.master.addons.trigger(RequestHook(flow)))
        return flow

    def errors(self) -> list[str]:
        return [formatEvent(event) for event in self.events if event["log_level"] == LogLevel.error]

    def test_loaded_in_order(self) -> None:
        """The scripts of the option are loaded as addons, in order, and get running."""
        first = self.write(VERSION.format(name="first"), "first.py")
        second = self.write(VERSION.format(name="second"), "second.py")
        self.start(first, second)
        self.assertEqual(self.handled_by(), ["first", "second"])
        self.assertEqual(EVENTS, ["first running", "second running"])

    def test_changed_file_reloaded(self) -> None:
        """A changed file is reloaded within a second: the old version's done, the new one in its place, running."""
        path = self.write(VERSION.format(name="v1"))
        self.start(path)
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(self.handled_by(), ["v1"])
        self.write(VERSION.format(name="v2"))
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(self.handled_by(), ["v2"])
        self.assertEqual(EVENTS, ["v1 running", "v1 done", "v2 running"])
        self.assertEqual(self.master.addons.chain[-1].__file__, path)  # type: ignore[attr-defined]

    def test_broken_version_keeps_old(self) -> None:
        """A new version that fails to import is logged with file and line; the old one goes on, and a fix is picked up."""
        path = self.write(VERSION.format(name="v1"))
        self.start(path)
        self.write("def request(flow):\n    flow.append('v2'\n")
        self.clock.advance(RELOAD_INTERVAL)
        [error] = self.errors()
        self.assertIn(f"{path}:2: SyntaxError", error)
        self.assertTrue(error.endswith("; the previous version keeps running"), error)
        self.assertEqual(self.handled_by(), ["v1"])
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(len(self.errors()), 1)
        self.write(VERSION.format(name="v3"))
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(self.handled_by(), ["v3"])
        self.assertEqual(EVENTS, ["v1 running", "v1 done", "v3 running"])

    def test_refused_configure_keeps_old(self) -> None:
        """A new version whose configure refuses the options is logged; the old one goes on, not told done."""
        path = self.write(VERSION.format(name="v1"))
        self.start(path)
        self.write(
            """
            from twisted_mitm.exceptions import OptionsError

            def configure(updated):
                raise OptionsError("not today")

            def request(flow):
                flow.append("v2")
            """
        )
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(self.errors(), ["not today; the previous version keeps running"])
        self.assertEqual(self.handled_by(), ["v1"])
        self.assertEqual(EVENTS, ["v1 running"])

    def test_error_in_hook_of_new_version(self) -> None:
        """A new version that imports but fails at run time is in place; its error is logged with its line."""
        path = self.write(VERSION.format(name="v1"))
        self.start(path)
        self.write("def request(flow):\n    flow.append(1 / 0)\n")
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(self.handled_by(), [])
        self.assertTrue(any(f"{path}:2: error in request hook: ZeroDivisionError" in formatEvent(e) for e in self.events))
        self.flushLoggedErrors(ZeroDivisionError)

    def test_file_gone(self) -> None:
        """A script whose file disappears is unloaded and dropped from the option."""
        kept = self.write(VERSION.format(name="kept"), "kept.py")
        gone = self.write(VERSION.format(name="gone"), "gone.py")
        self.start(kept, gone)
        os.unlink(gone)
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(self.master.options.scripts, [kept])
        self.assertEqual(self.handled_by(), ["kept"])
        self.assertIn("gone done", EVENTS)

    def test_added_and_removed_at_run_time(self) -> None:
        """Setting scripts while running loads the new one (with running) and unloads the dropped one (with done)."""
        first = self.write(VERSION.format(name="first"), "first.py")
        second = self.write(VERSION.format(name="second"), "second.py")
        self.start(first)
        self.master.options.scripts = [first, second]
        self.assertEqual(self.handled_by(), ["first", "second"])
        self.master.options.scripts = [second]
        self.assertEqual(self.handled_by(), ["second"])
        self.assertEqual(EVENTS, ["first running", "second running", "first done"])

    def test_broken_at_run_time_retried(self) -> None:
        """A script added while running that fails is logged, not fatal, and loaded once its file is fixed."""
        self.start()
        path = self.write("def broken(:\n")
        self.master.options.scripts = [path]
        self.assertIn(f"{path}:1: SyntaxError", self.errors()[0])
        self.assertEqual(self.handled_by(), [])
        self.write(VERSION.format(name="fixed"))
        self.clock.advance(RELOAD_INTERVAL)
        self.assertEqual(self.handled_by(), ["fixed"])
        self.assertEqual(EVENTS, ["fixed running"])

    def test_start_up_error_fatal(self) -> None:
        """At start-up a script that cannot be loaded stops the proxy with one line."""
        missing = os.path.join(self.directory, "absent.py")
        self.master.options.scripts = [missing]
        error = self.assertRaises(AddonError, self.master.addons.add, self.loader)
        self.assertEqual(str(error), f"script not found: {missing}")

    def test_listed_twice(self) -> None:
        """A script listed twice is refused."""
        self.master.addons.add(self.loader)
        path = self.write(VERSION.format(name="twice"))
        error = self.assertRaises(OptionsError, setattr, self.master.options, "scripts", [path, path])
        self.assertEqual(str(error), f"scripts: {path} given more than once")
        self.assertEqual(self.master.options.scripts, [])

    def test_watching_only_while_running(self) -> None:
        """Files are looked at only between the running and done hooks."""
        path = self.write(VERSION.format(name="v1"))
        self.master.options.scripts = [path]
        self.master.addons.add(self.loader)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(self.master.addons.trigger(RunningHook()))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.successResultOf(self.master.addons.trigger(DoneHook()))
        self.assertEqual(self.clock.getDelayedCalls(), [])


HEADER_SCRIPT = """
def response(flow):
    flow.response.headers["x-version"] = "{version}"
"""


class RunningProxyTests(TestCase):
    """Reloading in a running proxy, on the real reactor."""

    async def test_edit_takes_effect(self) -> None:
        """Editing a script given with scripts= changes the proxy's behaviour within about a second."""
        path = os.path.abspath(self.mktemp() + ".py")
        with open(path, "w") as file:
            file.write(HEADER_SCRIPT.format(version="1"))
        os.utime(path, (1_000_000, 1_000_000))
        self.addCleanup(lambda: [sys.modules.pop(name) for name in list(sys.modules) if name.startswith("__twisted_mitm_script__")])
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, options=[f"scripts={path}"])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertIn(b"x-version: 1", out)
        with open(path, "w") as file:
            file.write(HEADER_SCRIPT.format(version="2"))
        for _ in range(15):  # the loader looks every second: allow three
            await deferLater(reactor, 0.2, lambda: None)
            out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
            if b"x-version: 2" in out:
                break
        self.assertIn(b"x-version: 2", out)
