"""Tests for L{twisted_mitm.addonmanager}, with L{twisted_mitm.master}, C{ctx} and C{script}."""

from __future__ import annotations

import os
import sys
import textwrap
import threading

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.test_flow import make_connections
from twisted_mitm import ctx
from twisted_mitm.addonmanager import load_script
from twisted_mitm.addons.defaults import default_addons
from twisted_mitm.exceptions import AddonError, OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.hooks import DoneHook, RequestHook, ResponseHook
from twisted_mitm.command import CommandError
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


class Recorder:
    """An addon appending its label to the flow stand-in (a list) on C{request}."""

    def __init__(self, label: str) -> None:
        self.name = label
        self.label = label

    def request(self, flow: list) -> None:
        flow.append(self.label)


class ScriptMixin:
    """Write scripts into a temporary directory and build a master for them."""

    def setUp(self) -> None:
        self.shutdowns: list[str] = []
        self.master = Master(default_options(), lambda: self.shutdowns.append("shutdown"))
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.modules_before = set(sys.modules)
        self.addCleanup(self.forget_script_modules)

    def forget_script_modules(self) -> None:
        for name in set(sys.modules) - self.modules_before:
            if name.startswith("__twisted_mitm_script__") or name.startswith("helper_"):
                del sys.modules[name]

    def write(self, source: str, name: str = "script.py", directory: str | None = None) -> str:
        path = os.path.join(directory or self.directory, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(source).lstrip())
        return path

    def add_script(self, source: str, name: str = "script.py") -> str:
        path = self.write(source, name)
        self.master.addons.add(load_script(path))
        return path

    def failures(self) -> list:
        return [e for e in self.events if "log_failure" in e]


class TriggerTests(ScriptMixin, TestCase):
    """Hooks run in chain order, wait for asynchronous handlers and contain failures."""

    def setUp(self) -> None:
        super().setUp()
        self.events = self.enterContext(capturedLogs())

    def test_module_level_hooks(self) -> None:
        """A script's module-level function named after a hook handles it."""
        self.add_script("def request(flow):\n    flow.append('script')\n")
        flow: list = []
        self.assertIsNone(self.successResultOf(self.master.addons.trigger(RequestHook(flow))))
        self.assertEqual(flow, ["script"])

    def test_nested_addons_depth_first(self) -> None:
        """Module function first, then each object of C{addons} followed by its own C{addons}."""
        self.add_script(
            """
            class Addon:
                def __init__(self, label, children=()):
                    self.name = label
                    self.addons = list(children)
                def request(self, flow):
                    flow.append(self.name)

            def request(flow):
                flow.append("module")

            addons = [Addon("a", [Addon("a1", [Addon("a11")])]), Addon("b")]
            """
        )
        self.master.addons.add(Recorder("after"))
        flow: list = []
        self.master.addons.trigger(RequestHook(flow))
        self.assertEqual(flow, ["module", "a", "a1", "a11", "b", "after"])
        self.assertEqual(self.master.addons.get("a11").name, "a11")

    def test_async_hook_waited_for(self) -> None:
        """The next addon runs only after an C{async def} hook awaiting asyncio has finished."""
        self.add_script(
            """
            import asyncio

            async def request(flow):
                flow.append("started")
                await asyncio.sleep(0.01)
                flow.append("finished")
            """
        )
        self.master.addons.add(Recorder("second"))
        flow: list = []
        done = self.master.addons.trigger(RequestHook(flow))
        self.assertNoResult(done)
        done.addCallback(lambda _: self.assertEqual(flow, ["started", "finished", "second"]))
        return done

    def test_create_task_from_plain_hook(self) -> None:
        """A plain hook running under the reactor may start an asyncio task."""
        self.add_script(
            """
            import asyncio

            async def later(flow):
                flow.append("task")

            def request(flow):
                flow.append(asyncio.create_task(later(flow)))
            """
        )
        flow: list = []
        done = deferLater(reactor, 0, self.master.addons.trigger, RequestHook(flow))
        done.addCallback(lambda _: Deferred.fromFuture(flow[0]))
        done.addCallback(lambda _: self.assertEqual(flow[1:], ["task"]))
        return done

    def test_deferred_hook_waited_for(self) -> None:
        """A hook returning a Deferred holds the chain until that Deferred fires."""
        waiting: Deferred[None] = Deferred()

        class Waits:
            def request(self, flow: list) -> Deferred[None]:
                return waiting

        self.master.addons.add(Waits(), Recorder("second"))
        flow: list = []
        done = self.master.addons.trigger(RequestHook(flow))
        self.assertNoResult(done)
        self.assertEqual(flow, [])
        waiting.callback("ignored")
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(flow, ["second"])

    def test_intercepted_flow_held(self) -> None:
        """A flow intercepted in a hook is held once every handler ran, until it is resumed."""

        class Holds:
            def request(self, flow: Flow) -> None:
                flow.intercept()

        seen: list[bool] = []

        class After:
            def request(self, flow: Flow) -> None:
                seen.append(flow.intercepted)

        self.master.addons.add(Holds(), After())
        flow = Flow(*make_connections(), live=True)
        done = self.master.addons.trigger(RequestHook(flow))
        self.assertNoResult(done)
        self.assertEqual(seen, [True])
        flow.resume()
        self.assertIsNone(self.successResultOf(done))
        held = self.master.addons.trigger(ResponseHook(flow))
        self.successResultOf(held)

    def test_script_waits_for_resume(self) -> None:
        """A script may intercept in an async hook and await flow.wait_for_resume() itself (on asyncio)."""
        self.add_script(
            """
            async def request(flow):
                flow.intercept()
                flow.metadata["state"] = "held"
                await flow.wait_for_resume()
                flow.metadata["state"] = "resumed"
            """
        )
        flow = Flow(*make_connections(), live=True)
        done = self.master.addons.trigger(RequestHook(flow))
        check = deferLater(reactor, 0.01, lambda: (self.assertEqual(flow.metadata, {"state": "held"}), self.assertNoResult(done)))
        check.addCallback(lambda _: flow.resume())
        check.addCallback(lambda _: done)
        check.addCallback(lambda _: self.assertEqual(flow.metadata, {"state": "resumed"}))
        return check

    def test_hook_exception_logged_with_line(self) -> None:
        """A raising hook is logged with its file and line, and the chain goes on."""
        path = self.add_script("def request(flow):\n    raise ValueError('boom')\n")
        self.master.addons.add(Recorder("second"))
        flow: list = []
        self.assertIsNone(self.successResultOf(self.master.addons.trigger(RequestHook(flow))))
        self.assertEqual(flow, ["second"])
        [event] = self.failures()
        self.assertEqual(formatEvent(event), f"{path}:2: error in request hook: ValueError: boom")
        self.assertEqual(event["log_failure"].frames[0][1], path)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_async_hook_failure_logged_with_line(self) -> None:
        """A coroutine failing after an await is logged with its line; the chain goes on."""
        path = self.add_script(
            """
            import asyncio

            async def request(flow):
                await asyncio.sleep(0)
                raise KeyError("missing")
            """
        )
        self.master.addons.add(Recorder("second"))
        flow: list = []

        def check(result: None) -> None:
            self.assertIsNone(result)
            self.assertEqual(flow, ["second"])
            [event] = self.failures()
            self.assertEqual(
                formatEvent(event), f"{path}:5: error in request hook: KeyError: 'missing'"
            )
            self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

        return self.master.addons.trigger(RequestHook(flow)).addCallback(check)

    def test_deferred_failure_logged(self) -> None:
        """A hook whose Deferred fails is logged, and the trigger's Deferred still succeeds."""
        waiting: Deferred[None] = Deferred()

        class Fails:
            def request(self, flow: list) -> Deferred[None]:
                return waiting

        self.master.addons.add(Fails(), Recorder("second"))
        flow: list = []
        done = self.master.addons.trigger(RequestHook(flow))
        waiting.errback(RuntimeError("upstream gone"))
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(flow, ["second"])
        [event] = self.failures()
        self.assertIn("error in request hook: RuntimeError: upstream gone", formatEvent(event))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_unhandled_hook_fires_at_once(self) -> None:
        """A hook no addon handles gives an already-fired Deferred."""
        self.master.addons.add(Recorder("only"))
        self.assertIsNone(self.successResultOf(self.master.addons.trigger(ResponseHook([]))))

    def test_handler_cache_follows_add_and_remove(self) -> None:
        """Adding or removing an addon changes who handles the next trigger."""
        flow: list = []
        self.master.addons.trigger(RequestHook(flow))
        recorder = Recorder("late")
        self.master.addons.add(recorder)
        self.master.addons.trigger(RequestHook(flow))
        self.successResultOf(self.master.addons.remove(recorder))
        self.master.addons.trigger(RequestHook(flow))
        self.assertEqual(flow, ["late"])

    def test_remove_runs_done(self) -> None:
        """Removing an addon calls its C{done} hook; removing it twice is an error."""
        calls: list[str] = []

        class Finishing:
            def done(self) -> None:
                calls.append("done")

        addon = Finishing()
        self.master.addons.add(addon)
        self.successResultOf(self.master.addons.remove(addon))
        self.assertEqual(calls, ["done"])
        self.assertRaises(AddonError, self.master.addons.remove, addon)

    def test_done_hook_through_trigger(self) -> None:
        """C{done} takes no arguments."""
        self.add_script("calls = []\ndef done():\n    calls.append('done')\n")
        self.successResultOf(self.master.addons.trigger(DoneHook()))
        self.assertEqual(self.master.addons.chain[0].calls, ["done"])

    def test_concurrent_runs_in_thread(self) -> None:
        """A C{@concurrent} hook runs in another thread and the chain waits for it."""
        self.add_script(
            """
            import threading
            import time
            from twisted_mitm.script import concurrent

            @concurrent
            def request(flow):
                time.sleep(0.01)
                flow.append(threading.get_ident())
            """
        )
        self.master.addons.add(Recorder("second"))
        flow: list = []

        def check(_: None) -> None:
            self.assertEqual(len(flow), 2)
            self.assertNotEqual(flow[0], threading.get_ident())
            self.assertEqual(flow[1], "second")

        return self.master.addons.trigger(RequestHook(flow)).addCallback(check)

    def test_ctx_log_uses_script_namespace(self) -> None:
        """C{ctx.log.info} in a script logs in the script module's namespace."""
        self.add_script(
            """
            from twisted_mitm import ctx

            def request(flow):
                ctx.log.info("seen {flow}")
            """
        )
        self.master.addons.trigger(RequestHook([]))
        [event] = [e for e in self.events if e.get("log_namespace", "").startswith("__twisted")]
        self.assertEqual(event["log_namespace"], "__twisted_mitm_script__.script")
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(formatEvent(event), "seen {flow}")


class LoadConfigureTests(ScriptMixin, SynchronousTestCase):
    """C{load} declares options, C{configure} sees them, and refusals propagate."""

    OPTION_SCRIPT = """
        from typing import Optional
        from twisted_mitm import ctx
        from twisted_mitm.exceptions import OptionsError

        seen = []

        def load(loader):
            loader.add_option(
                name="myopt", typespec=int, default=1, help="A script's option.",
            )
            loader.add_option(
                name="label", typespec=Optional[str], default=None, help="Another.",
            )

        def configure(updated):
            if ctx.options.myopt < 0:
                raise OptionsError("myopt must not be negative")
            seen.append((sorted(updated & {"myopt", "label"}), ctx.options.myopt))
        """

    def test_deferred_set_applied_after_load(self) -> None:
        """A C{--set} for a script's option, deferred before loading, reaches C{configure}."""
        self.master.options.set("myopt=3", defer=True)
        self.assertEqual(self.master.options.deferred_names(), ["myopt"])
        self.add_script(self.OPTION_SCRIPT)
        self.master.options.process_deferred()
        self.assertEqual(self.master.options.deferred_names(), [])
        self.assertEqual(self.master.options.myopt, 3)
        self.assertEqual(self.master.addons.chain[0].seen, [(["label", "myopt"], 3)])

    def test_configure_after_change(self) -> None:
        """Changing an option after start-up calls C{configure} with the changed name."""
        self.add_script(self.OPTION_SCRIPT)
        self.master.options.update(myopt=5)
        self.assertEqual(self.master.addons.chain[0].seen[-1], (["myopt"], 5))

    def test_configure_refusal_rolls_back(self) -> None:
        """An C{OptionsError} from C{configure} undoes the change and reaches the caller."""
        self.add_script(self.OPTION_SCRIPT)
        error = self.assertRaises(OptionsError, self.master.options.set, "myopt=-1")
        self.assertEqual(str(error), "myopt must not be negative")
        self.assertEqual(self.master.options.myopt, 1)

    def test_configure_refusal_at_start(self) -> None:
        """A script refusing the options at start-up makes C{add} raise C{OptionsError}."""
        self.master.options.set("myopt=-2", defer=True)
        path = self.write(self.OPTION_SCRIPT)
        error = self.assertRaises(OptionsError, self.master.addons.add, load_script(path))
        self.assertEqual(str(error), "myopt must not be negative")

    def test_reload_keeps_option_value(self) -> None:
        """Declaring the same option again (a script reloading) keeps its value."""
        path = self.write(self.OPTION_SCRIPT)
        first = load_script(path)
        self.master.addons.add(first)
        self.master.options.update(myopt=7)
        self.successResultOf(self.master.addons.remove(first))
        self.master.addons.add(load_script(path))
        self.assertEqual(self.master.options.myopt, 7)

    def test_ctx_and_shutdown(self) -> None:
        """The master fills in C{ctx}; C{shutdown()} calls the injected callable."""
        self.assertIs(ctx.master, self.master)
        self.assertIs(ctx.options, self.master.options)
        ctx.master.shutdown()
        self.assertEqual(self.shutdowns, ["shutdown"])

    def test_commands(self) -> None:
        """A command added by C{loader.add_command} is called through C{commands.call}."""
        self.add_script(
            """
            def load(loader):
                loader.add_command("test.add", lambda a, b=0: a + b)
            """
        )
        self.assertEqual(self.master.commands.call("test.add", 2, b=3), 5)
        error = self.assertRaises(CommandError, self.master.commands.call, "test.nope")
        self.assertEqual(str(error), "unknown command: test.nope")

    def test_async_load_refused(self) -> None:
        """An C{async def load} cannot run at start-up and is reported as such."""
        path = self.write("async def load(loader):\n    pass\n")
        error = self.assertRaises(AddonError, self.master.addons.add, load_script(path))
        self.assertEqual(str(error), f"{path}:1: the load hook must not be async")

    def test_load_exception_logged(self) -> None:
        """A C{load} raising anything but C{OptionsError} is logged, not fatal."""
        path = self.write("def load(loader):\n    1 / 0\n")
        with capturedLogs() as events:
            self.master.addons.add(load_script(path))
        [event] = [e for e in events if "log_failure" in e]
        self.assertIn(f"{path}:2: error in load hook: ZeroDivisionError", formatEvent(event))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_duplicate_addon_name(self) -> None:
        """Two addons with the same name cannot both be in the chain."""
        self.master.addons.add(Recorder("same"))
        error = self.assertRaises(AddonError, self.master.addons.add, Recorder("same"))
        self.assertEqual(str(error), "an addon called 'same' already exists")


class UnimplementedHookTests(ScriptMixin, SynchronousTestCase):
    """A handler of a mitmproxy hook that this proxy never calls is named in a warning at load."""

    def test_script_and_nested_addon(self) -> None:
        """Each unimplemented hook gets one warning with the handler's file and line; implemented ones none."""
        path = self.write(
            """
            def request(flow):
                pass

            def dns_request(flow):
                pass

            class Socks:
                def dns_request(self, flow):
                    pass

                def tls_clienthello(self, data):
                    pass

            addons = [Socks()]
            """
        )
        with capturedLogs() as events:
            self.master.addons.add(load_script(path))
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(
            warnings,
            [
                f"{path}:4: twisted_mitm does not implement mitmproxy's dns_request hook; this handler will never be called",
                f"{path}:8: twisted_mitm does not implement mitmproxy's dns_request hook; this handler will never be called",
            ],
        )

    def test_builtin_addons_quiet(self) -> None:
        """The built-in addons handle only hooks that exist."""
        with capturedLogs() as events:
            self.master.addons.add(*default_addons())
        self.assertEqual([e for e in events if e["log_level"] == LogLevel.warn], [])


class LoadScriptTests(ScriptMixin, SynchronousTestCase):
    """Script files become addon modules, or one-line errors."""

    def test_missing(self) -> None:
        """A path that is not a file is reported as such."""
        path = os.path.join(self.directory, "absent.py")
        error = self.assertRaises(AddonError, load_script, path)
        self.assertEqual(str(error), f"script not found: {path}")

    def test_syntax_error(self) -> None:
        """A syntax error names the file and line of the error."""
        path = self.write("x = 1\ndef broken(:\n")
        error = self.assertRaises(AddonError, load_script, path)
        self.assertTrue(str(error).startswith(f"{path}:2: SyntaxError: "), str(error))
        self.assertNotIn("\n", str(error))

    def test_import_error(self) -> None:
        """A failing import names the script line that made it."""
        path = self.write("import os\n\nimport does_not_exist_twisted_mitm\n")
        error = self.assertRaises(AddonError, load_script, path)
        self.assertEqual(
            str(error),
            f"{path}:3: ModuleNotFoundError: No module named 'does_not_exist_twisted_mitm'",
        )

    def test_exception_at_import(self) -> None:
        """Any exception while importing names the line that raised it."""
        path = self.write("def f():\n    raise RuntimeError('nope')\nf()\n")
        error = self.assertRaises(AddonError, load_script, path)
        self.assertEqual(str(error), f"{path}:2: RuntimeError: nope")

    def test_sibling_import(self) -> None:
        """A script imports a module from its own directory; C{sys.path} is restored after."""
        self.write("VALUE = 42\n", name="helper_sibling.py")
        path = self.write("import helper_sibling\nvalue = helper_sibling.VALUE\n")
        path_before = list(sys.path)
        self.assertEqual(load_script(path).value, 42)
        self.assertEqual(sys.path, path_before)

    def test_unique_module_names(self) -> None:
        """Two scripts with the same file name get separate modules."""
        other = os.path.join(self.directory, "other")
        os.makedirs(other)
        first = load_script(self.write("which = 'first'\n"))
        second = load_script(self.write("which = 'second'\n", directory=other))
        self.assertNotEqual(first.__name__, second.__name__)
        self.assertEqual((first.which, second.which), ("first", "second"))

    def test_addon_name_is_path(self) -> None:
        """A script module is named after its path, as in mitmproxy."""
        path = self.write("x = 1\n")
        self.assertEqual(load_script(path).name, path)
