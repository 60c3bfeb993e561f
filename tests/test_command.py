# -*- test-case-name: tests.test_command -*-
"""Tests for L{twisted_mitm.command}, the built-in commands (L{twisted_mitm.addons.core}) and
flow specifications (L{twisted_mitm.addons.liveflows}), with mitmproxy's command examples."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Optional

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.test_flow import make_connections
from twisted_mitm import command, ctx, types
from twisted_mitm.addonmanager import load_script
from twisted_mitm.addons.defaults import default_addons
from twisted_mitm.exceptions import CommandError
from twisted_mitm.flow import Error, Flow
from twisted_mitm.hooks import RequestheadersHook, TcpStartHook
from twisted_mitm.http import HTTPFlow, Request
from twisted_mitm.log import install_logging_bridge
from twisted_mitm.master import Master
from twisted_mitm.options import default_options
from twisted_mitm.tcp import TCPFlow

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def make_master() -> Master:
    master = Master(default_options(), shutdown=lambda: None)
    master.addons.add(*default_addons())
    return master


def live_http_flow(master: Master, url: str = "http://example.com/") -> HTTPFlow:
    """A live HTTP flow that has been through C{requestheaders}, as the proxy makes them."""
    flow = HTTPFlow(*make_connections(), live=True)
    flow.request = Request.make("GET", url)
    master.addons.trigger(RequestheadersHook(flow))
    return flow


class Typed:
    """An addon whose commands take each kind of argument."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @command.command("typed.scalars")
    def scalars(self, text: str, number: int, flag: bool, path: types.Path) -> str:
        self.calls.append((text, number, flag, path))
        return "done"

    @command.command("typed.optional")
    def optional(self, words: Sequence[str], count: int = 1) -> None:
        self.calls.append((words, count))

    @command.command()
    def typed_rest(self, first: str, *rest: int) -> None:
        self.calls.append((first, rest))

    @command.command("typed.flow")
    def one_flow(self, flow: Flow) -> None:
        self.calls.append((flow,))

    @command.command("typed.flows")
    def flows(self, flows: Sequence[Flow]) -> None:
        self.calls.append(tuple(flows))

    @command.command("typed.unknown")
    def unknown(self, value: Optional[float]) -> None:
        self.calls.append((value,))


class CommandTests(SynchronousTestCase):
    """Declaring commands and calling them with Python values or command lines."""

    def setUp(self) -> None:
        self.master = make_master()
        self.typed = Typed()
        self.master.addons.add(self.typed)
        self.commands = self.master.commands

    def test_registered_on_load(self) -> None:
        """Decorated methods are commands once the addon is added; an unnamed one is named after the function."""
        self.assertIn("typed.scalars", self.commands.commands)
        self.assertIn("typed.rest", self.commands.commands)
        self.assertEqual(self.commands.commands["typed.scalars"].usage(), "typed.scalars text number flag path")
        self.assertEqual(self.commands.commands["typed.rest"].usage(), "typed.rest first [rest...]")

    def test_call_native(self) -> None:
        """call() passes Python values through untouched and returns the result."""
        result = self.commands.call("typed.scalars", "a b", 3, False, "~/x")
        self.assertEqual(result, "done")
        self.assertEqual(self.typed.calls, [("a b", 3, False, "~/x")])

    def test_call_wrong_count(self) -> None:
        """Too few or too many values are a CommandError naming the command, and nothing runs."""
        error = self.assertRaises(CommandError, self.commands.call, "typed.scalars", "a")
        self.assertIn("typed.scalars: command argument mismatch", str(error))
        self.assertRaises(CommandError, self.typed.scalars, "a", 1, True, "p", "extra")
        self.assertEqual(self.typed.calls, [])

    def test_execute_converts_by_type(self) -> None:
        """A command line is split as a shell would and each word converted to its declared type."""
        self.commands.execute("typed.scalars 'a b' 42 yes ~/out.txt")
        [(text, number, flag, path)] = self.typed.calls
        self.assertEqual((text, number, flag), ("a b", 42, True))
        self.assertEqual(path, os.path.expanduser("~/out.txt"))
        self.assertIsInstance(path, types.Path)

    def test_defaults_lists_and_rest(self) -> None:
        """Optional parameters may be left out, Sequence[str] splits on commas, *args takes the rest."""
        self.commands.execute("typed.optional a,b")
        self.commands.execute("typed.optional '' 3")
        self.commands.execute("typed.rest x 1 2 3")
        self.commands.call_strings("typed.rest", ["y"])
        self.assertEqual(self.typed.calls, [(["a", "b"], 1), ([], 3), ("x", (1, 2, 3)), ("y", ())])

    def test_mistakes(self) -> None:
        """Unknown commands, wrong word counts, bad values and bad quoting are one clear CommandError each."""
        cases = {
            "nope.nothing": "unknown command: nope.nothing",
            "typed.scalars a": "typed.scalars: expected typed.scalars text number flag path, got 1 argument",
            "typed.optional a 1 2": "typed.optional: expected typed.optional words [count], got 3 arguments",
            "typed.scalars a many true p": "typed.scalars: number: 'many' is not an integer",
            "typed.scalars a 1 maybe p": "typed.scalars: flag: 'maybe' is not a boolean",
            "typed.unknown 1.5": "typed.unknown: value (of type",
            "typed.scalars 'a": "cannot parse command \"typed.scalars 'a\": No closing quotation",
            "  ": "invalid command",
        }
        for line, message in cases.items():
            error = self.assertRaises(CommandError, self.commands.execute, line)
            self.assertIn(message, str(error), line)
        self.assertEqual(self.typed.calls, [])

    def test_flow_arguments(self) -> None:
        """Flow parameters take a flow specification: @all, ids, one flow exactly for a Flow parameter."""
        first, second = live_http_flow(self.master), live_http_flow(self.master)
        self.commands.execute("typed.flows @all")
        self.commands.execute(f"typed.flow @{second.id}")
        self.commands.execute(f"typed.flows @{first.id},{second.id}")
        self.assertEqual(self.typed.calls, [(first, second), (second,), (first, second)])
        error = self.assertRaises(CommandError, self.commands.execute, "typed.flow @all")
        self.assertIn("the command needs one flow, the specification matched 2", str(error))

    def test_loader_add_command(self) -> None:
        """A plain function added with loader.add_command is typed from its annotations too."""

        def double(number: int) -> int:
            return number * 2

        self.commands.add("math.double", double)
        self.assertEqual(self.commands.execute("math.double 21"), 42)
        self.assertEqual(self.commands.call("math.double", 4), 8)


class FlowSpecificationTests(SynchronousTestCase):
    """view.flows.resolve: which live flows a specification selects."""

    def setUp(self) -> None:
        self.master = make_master()
        self.resolve = lambda spec: self.master.commands.call("view.flows.resolve", spec)

    def test_live_flows_only(self) -> None:
        """@all is the live HTTP and TCP flows, oldest first; finished flows drop out."""
        http_flow = live_http_flow(self.master)
        tcp_flow = TCPFlow(*make_connections(), live=True)
        self.master.addons.trigger(TcpStartHook(tcp_flow))
        done = live_http_flow(self.master)
        done.live = False
        self.assertEqual(self.resolve("@all"), [http_flow, tcp_flow])

    def test_marked(self) -> None:
        """@marked and @unmarked split the live flows by their mark."""
        marked, unmarked = live_http_flow(self.master), live_http_flow(self.master)
        marked.marked = ":default:"
        self.assertEqual(self.resolve("@marked"), [marked])
        self.assertEqual(self.resolve("@unmarked"), [unmarked])

    def test_no_view(self) -> None:
        """@focus, @shown and @hidden need mitmproxy's view: a clear CommandError."""
        for spec in ("@focus", "@shown", "@hidden"):
            error = self.assertRaises(CommandError, self.resolve, spec)
            self.assertIn("needs mitmproxy's flow view", str(error))

    def test_filter(self) -> None:
        """Any other specification is a filter expression."""
        wanted = live_http_flow(self.master, "http://wanted.example/")
        live_http_flow(self.master, "http://other.example/")
        self.assertEqual(self.resolve("~d wanted.example"), [wanted])
        self.assertRaises(CommandError, self.resolve, "~nonsense")


class CoreCommandTests(SynchronousTestCase):
    """set, flow.mark, flow.mark.toggle, flow.kill and flow.resume."""

    def setUp(self) -> None:
        self.master = make_master()
        self.updates: list[list[Flow]] = []
        updates = self.updates

        class Updates:
            def update(self, flows: Sequence[Flow]) -> None:
                updates.append(list(flows))

        self.master.addons.add(Updates())

    def test_set_forms(self) -> None:
        """set NAME VALUE, set NAME=VALUE, several values for a list, a bare boolean, a bare optional."""
        execute = self.master.commands.execute
        execute("set flow_detail 0")
        self.assertEqual(ctx.options.flow_detail, 0)
        execute("set flow_detail=2")
        self.assertEqual(ctx.options.flow_detail, 2)
        execute("set ignore_hosts a.example b.example")
        self.assertEqual(ctx.options.ignore_hosts, ["a.example", "b.example"])
        execute("set ssl_insecure")
        self.assertTrue(ctx.options.ssl_insecure)
        execute("set stream_large_bodies 1m")
        execute("set stream_large_bodies")
        self.assertIsNone(ctx.options.stream_large_bodies)

    def test_set_mistakes(self) -> None:
        """An unknown option or a bad value is a CommandError, the option unchanged."""
        error = self.assertRaises(CommandError, self.master.commands.execute, "set no_such_option 1")
        self.assertEqual(str(error), "unknown option: no_such_option")
        error = self.assertRaises(CommandError, self.master.commands.execute, "set listen_port many")
        self.assertEqual(str(error), "listen_port: 'many' is not an integer")
        self.assertEqual(ctx.options.listen_port, 8080)

    def test_mark(self) -> None:
        """flow.mark sets a mark (a name, one character, or true/false), then announces the flows with update."""
        flow = live_http_flow(self.master)
        self.master.commands.call("flow.mark", [flow], ":default:")
        self.assertEqual(flow.marked, ":default:")
        self.master.commands.execute(f"flow.mark @{flow.id} false")
        self.assertEqual(flow.marked, "")
        self.master.commands.execute("flow.mark @all true")
        self.assertEqual(flow.marked, ":default:")
        self.master.commands.execute("flow.mark @all ★")
        self.assertEqual(flow.marked, "★")
        self.assertEqual(self.updates, [[flow]] * 4)
        error = self.assertRaises(CommandError, self.master.commands.execute, "flow.mark @all 'not a mark'")
        self.assertIn("invalid marker value", str(error))

    def test_mark_toggle(self) -> None:
        """flow.mark.toggle marks unmarked flows and unmarks marked ones."""
        first, second = live_http_flow(self.master), live_http_flow(self.master)
        second.marked = "x"
        self.master.commands.execute("flow.mark.toggle @all")
        self.assertEqual((first.marked, second.marked), (":default:", ""))

    def test_kill(self) -> None:
        """flow.kill kills the killable flows, logs how many, and announces them."""
        live = live_http_flow(self.master)
        killed: list[str] = []
        live.on_kill = lambda: killed.append("killed")
        over = HTTPFlow(*make_connections(), live=False)
        with capturedLogs() as events:
            self.master.commands.call("flow.kill", [live, over])
        self.assertEqual(killed, ["killed"])
        self.assertEqual(str(live.error), Error.KILLED_MESSAGE)
        self.assertIsNone(over.error)
        self.assertIn("Killed 1 flows.", [formatEvent(event) for event in events])
        self.assertEqual(self.updates, [[live]])

    def test_resume(self) -> None:
        """flow.resume releases intercepted flows only."""
        held, free = live_http_flow(self.master), live_http_flow(self.master)
        held.intercept()
        waiting = held.resumed()
        self.master.commands.execute("flow.resume @all")
        self.assertFalse(held.intercepted)
        self.assertIsNone(self.successResultOf(waiting))
        self.assertEqual(self.updates, [[held]])
        self.assertFalse(free.intercepted)


class CommandExampleTests(SynchronousTestCase):
    """mitmproxy's command examples, with only their imports changed, in examples/."""

    def setUp(self) -> None:
        self.master = make_master()
        root = logging.getLogger()
        self.addCleanup(root.setLevel, root.level)
        self.addCleanup(root.removeHandler, install_logging_bridge())
        self.modules = set(sys.modules)
        self.addCleanup(lambda: [sys.modules.pop(name) for name in set(sys.modules) - self.modules if name.startswith("__twisted_mitm_script__")])

    def load(self, name: str) -> object:
        module = load_script(os.path.join(EXAMPLES, name))
        self.master.addons.add(module)
        return module

    def test_simple(self) -> None:
        """commands_simple.py: myaddon.inc counts its calls and logs the count."""
        module = self.load("commands_simple.py")
        with capturedLogs() as events:
            self.master.commands.call("myaddon.inc")
            self.master.commands.execute("myaddon.inc")
        self.assertEqual(module.addons[0].num, 2)  # type: ignore[attr-defined]
        self.assertEqual([formatEvent(e) for e in events if "num =" in formatEvent(e)], ["num = 1", "num = 2"])

    def test_flows(self) -> None:
        """commands_flows.py: myaddon.addheader adds a header to the flows given."""
        self.load("commands_flows.py")
        first, second = live_http_flow(self.master), live_http_flow(self.master)
        self.master.commands.call("myaddon.addheader", [first])
        self.assertEqual((first.request.headers.get("myheader"), second.request.headers.get("myheader")), ("value", None))
        self.master.commands.execute("myaddon.addheader @all")
        self.assertEqual(second.request.headers["myheader"], "value")

    def test_paths(self) -> None:
        """commands_paths.py: myaddon.histogram writes a per-host count to the path given."""
        self.load("commands_paths.py")
        flows = [live_http_flow(self.master, url) for url in ("http://a.example/", "http://b.example/", "http://b.example/x")]
        path = os.path.abspath(self.mktemp())
        self.master.commands.execute(f"myaddon.histogram @all '{path}'")
        with open(path) as written:
            self.assertEqual(written.read(), "1: a.example\n2: b.example\n")
        self.assertEqual([flow.request.host for flow in flows], ["a.example", "b.example", "b.example"])
