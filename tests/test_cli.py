# -*- test-case-name: tests.test_cli -*-
"""C{twistd mitm} and C{python -m twisted_mitm} as child processes (SPEC §2)."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import textwrap
from pathlib import Path

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import _without_proxy_env, curl, reactor, shared_confdir, start_raw_origin, respond
from twisted_mitm import tap
from twisted_mitm.log import install_logging_bridge

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
FLOW_FIXTURE = Path(__file__).parent / "fixtures" / "flows" / "tcp.mitm"

#: The two ways to start the proxy in the foreground; each is completed with mitm options.
COMMANDS = {
    "python -m": [sys.executable, "-m", "twisted_mitm"],
    "twistd": [TWISTD, "--pidfile=", "-n", "mitm"],
}


class _Child(ProcessProtocol):
    """Collects a child's output; C{ended} fires with its exit code."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: Deferred[int] = Deferred()
        self.on_output: Deferred[None] | None = None
        self.pattern: re.Pattern[bytes] | None = None

    def outReceived(self, data: bytes) -> None:
        self.out += data
        self._check()

    def errReceived(self, data: bytes) -> None:
        self.err += data
        self._check()

    def _check(self) -> None:
        if self.on_output is not None and self.pattern is not None and self.pattern.search(self.out + self.err):
            waiting, self.on_output = self.on_output, None
            waiting.callback(None)

    def wait_for(self, pattern: bytes, timeout: float = 15) -> Deferred[None]:
        """Fire once the output matches C{pattern}."""
        self.pattern = re.compile(pattern)
        self.on_output = Deferred()
        self.on_output.addTimeout(timeout, reactor)
        waiting = self.on_output
        self._check()
        return waiting

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode if reason.value.exitCode is not None else -(reason.value.signal or 0))


class CommandLineTests(TestCase):
    """Start-up errors are one clear line; a good start serves requests."""

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> _Child:
        """Start a child process in a scratch directory (C{env} added to the environment); it is
        killed if still running when the test ends."""
        child = _Child()
        cwd = self.mktemp()
        os.makedirs(cwd)
        transport = reactor.spawnProcess(child, argv[0], argv, env={**_without_proxy_env(), **(env or {})}, path=cwd)

        def kill() -> Deferred[int] | None:
            if child.ended.called:
                return None
            transport.signalProcess("KILL")
            return child.ended

        self.addCleanup(kill)
        return child

    async def run_both(self, *arguments: str) -> list[tuple[int, bytes, bytes]]:
        """Run both commands with C{arguments} (and a temporary confdir); their exit codes and outputs."""
        children = [self.spawn([*command, "--set", f"confdir={shared_confdir()}", *arguments]) for command in COMMANDS.values()]
        codes = await gatherResults([child.ended.addTimeout(20, reactor) for child in children])
        return [(code, child.out, child.err) for code, child in zip(codes, children)]

    async def assert_refused(self, expected: str, *arguments: str) -> None:
        """Both commands exit non-zero with exactly one stderr line containing C{expected}."""
        for (code, out, err), name in zip(await self.run_both(*arguments), COMMANDS):
            lines = err.decode().splitlines()
            self.assertNotEqual(code, 0, name)
            self.assertEqual(len(lines), 1, (name, err, out))
            self.assertIn(expected, lines[0], (name, lines[0]))
            self.assertNotIn(b"Traceback", out + err, name)

    def write_script(self, source: str) -> str:
        """Write a script file for this test and return its path."""
        path = os.path.abspath(self.mktemp()) + ".py"
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        return path

    async def test_unknown_option(self) -> None:
        """--set of an unknown name is refused naming it."""
        await self.assert_refused("unknown option: nosuch", "--set", "nosuch=1")

    async def test_bad_size(self) -> None:
        """A size that does not parse is refused with examples."""
        await self.assert_refused("stream_large_bodies: '3x' is not a size (examples: 512k, 3m, 1g)", "--set", "stream_large_bodies=3x")

    async def test_bad_mode(self) -> None:
        """A mode that does not parse is one line naming it and why."""
        await self.assert_refused("mode: invalid mode 'reverse:ftp://x': the server must be", "--mode", "reverse:ftp://x")

    async def test_bad_bool(self) -> None:
        """A boolean that does not parse is refused naming the option."""
        await self.assert_refused("ssl_insecure", "--set", "ssl_insecure=maybe")

    async def test_bad_port(self) -> None:
        """A port out of range is refused naming the option."""
        await self.assert_refused("listen_port", "-p", "70000")

    async def test_missing_script(self) -> None:
        """A script path that does not exist is refused naming it."""
        await self.assert_refused("/no/such/script.py", "-s", "/no/such/script.py")

    async def test_script_syntax_error(self) -> None:
        """A script with a syntax error is refused naming the file."""
        path = self.write_script("def request(flow)\n    pass\n")
        await self.assert_refused(os.path.basename(path), "-s", path)

    async def test_configure_raises_options_error(self) -> None:
        """A script whose configure raises OptionsError stops start-up with its message."""
        path = self.write_script(
            """
            from twisted_mitm.exceptions import OptionsError

            def configure(updated):
                raise OptionsError("this script refuses to run")
            """
        )
        await self.assert_refused("this script refuses to run", "-s", path)

    async def test_bad_filter_argument(self) -> None:
        """A filter expression after the options that does not parse is refused, quoting it."""
        await self.assert_refused("dumper_filter: Invalid filter expression: '~u (a': expected a regex after ~u", "~u", "(a")

    async def test_bad_rewriting_rules(self) -> None:
        """Bad rules of the rewriting options (wrong separators, a bad filter, a missing @file)
        stop start-up with exit status 2 and one line naming the rule
        (the command is that of C{python -m twisted_mitm}; twistd goes through the same checks)."""
        cases = [
            ("modify_headers: cannot parse '/only-one-part': expected /subject/replacement", "modify_headers=/only-one-part"),
            ("map_remote: cannot parse '|~nope|a|b': Invalid filter expression: '~nope'", "map_remote=|~nope|a|b"),
            ("modify_body: cannot parse '|x|@/no/such/file': cannot read '/no/such/file'", "modify_body=|x|@/no/such/file"),
        ]
        command = [*COMMANDS["python -m"], "--set", f"confdir={shared_confdir()}"]
        children = [self.spawn([*command, "--set", option]) for _, option in cases]
        codes = await gatherResults([child.ended.addTimeout(20, reactor) for child in children])
        for (expected, option), code, child in zip(cases, codes, children):
            self.assertEqual(code, 2, option)
            self.assertEqual(len(child.err.splitlines()), 1, (option, child.err))
            self.assertTrue(child.err.startswith(b"twisted_mitm: error: "), child.err)
            self.assertIn(expected, child.err.decode(), option)

    async def test_port_in_use(self) -> None:
        """A listen port already in use stops start-up with one line naming it."""
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        await self.assert_refused(f"cannot listen on 127.0.0.1:{port}", "-p", str(port))

    async def test_missing_rfile(self) -> None:
        """A flow file to read that does not exist is refused naming it."""
        await self.assert_refused("rfile: cannot read /no/such/flows.mitm: No such file or directory", "-r", "/no/such/flows.mitm")

    async def test_corrupt_rfile(self) -> None:
        """A flow file that breaks off is refused naming the broken flow."""
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(FLOW_FIXTURE.read_bytes()[:-5])
        await self.assert_refused("is not a valid flow file: flow 2: not a tnetstring: truncated", "-r", path)

    async def test_read_and_write_then_stop(self) -> None:
        """-r IN -w OUT runs IN's flows through the addons into OUT, then exits 0 by itself."""
        for name, command in COMMANDS.items():
            out = os.path.abspath(self.mktemp())
            child = self.spawn([*command, "-p", "0", "--set", f"confdir={shared_confdir()}", "-r", str(FLOW_FIXTURE), "-w", out])
            code = await child.ended.addTimeout(20, reactor)
            self.assertEqual(code, 0, (name, child.out, child.err))
            self.assertIn(b"rfile: loaded 2 flows", child.out, name)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), FLOW_FIXTURE.read_bytes(), name)

    async def test_twistd_help_lists_mitm(self) -> None:
        """twistd --help lists the mitm plugin."""
        child = self.spawn([TWISTD, "--help"])
        await child.ended.addTimeout(20, reactor)
        self.assertRegex(child.out.decode(), r"(?m)^\s+mitm\s")

    async def test_mitm_help_documents_every_flag(self) -> None:
        """twistd mitm --help mentions every flag of SPEC §2."""
        child = self.spawn([TWISTD, "mitm", "--help"])
        code = await child.ended.addTimeout(20, reactor)
        text = child.out.decode()
        self.assertEqual(code, 0)
        flags = ["--listen-host", "--listen-port", "-p", "--mode", "--scripts", "-s", "--set", "--ssl-insecure", "-k"]
        flags += ["--ignore-hosts", "--allow-hosts", "--quiet", "-q", "--flow-detail"]
        flags += ["--save-stream-file", "-w", "--rfile", "-r"]
        for flag in flags:
            self.assertRegex(text, rf"(?m)^\s*(-\w, )?.*{re.escape(flag)}[ =,]", flag)
        for option in ("stream_large_bodies", "body_size_limit", "confdir", "stream_websockets", "proxyauth", "hardump"):
            self.assertIn(option, text)

    async def test_good_start_serves_and_stops(self) -> None:
        """Both commands start on port 0, serve a request with a script option set by --set, and stop on SIGTERM."""
        origin = start_raw_origin(self, respond(200, b"origin"))
        script = self.write_script(
            """
            from twisted_mitm import ctx

            def load(loader):
                loader.add_option(name="tag", typespec=str, default="none", help="Response tag.")

            def response(flow):
                flow.response.headers["X-Tag"] = ctx.options.tag
            """
        )
        for name, command in COMMANDS.items():
            child = self.spawn([*command, "-p", "0", "--set", f"confdir={shared_confdir()}", "-s", script, "--set", "tag=tagged"])
            await child.wait_for(rb"listening on 127\.0\.0\.1:(\d+)")
            match = re.search(rb"listening on 127\.0\.0\.1:(\d+)", child.out + child.err)
            assert match is not None
            out, err, code = await curl("-x", f"http://127.0.0.1:{int(match.group(1))}", "-i", origin.url + "/", timeout=10)
            self.assertEqual(code, 0, (name, err, child.out, child.err))
            self.assertIn(b"X-Tag: tagged", out, name)
            self.assertTrue(out.endswith(b"\r\n\r\norigin"), name)
            child.transport.signalProcess("TERM")
            exit_code = await child.ended.addTimeout(15, reactor)
            # twistd shuts down cleanly, then re-raises the signal to exit with it.
            self.assertIn(exit_code, (0, -15), (name, child.out, child.err))
            self.assertIn(b"Server Shut Down.", child.out, name)
            self.assertNotIn(b"Traceback", child.out + child.err, name)

    async def test_memory_report_on_sigusr1(self) -> None:
        """With TWISTED_MITM_TRACEMALLOC set, SIGUSR1 logs the memory report with the top allocation sites."""
        command = COMMANDS["python -m"]
        child = self.spawn([*command, "-p", "0", "--set", f"confdir={shared_confdir()}"], env={"TWISTED_MITM_TRACEMALLOC": "3"})
        await child.wait_for(rb"listening on 127\.0\.0\.1:")
        child.transport.signalProcess(signal.SIGUSR1)
        await child.wait_for(rb"memory: traced [0-9.]+ MiB \(peak [0-9.]+ MiB\); top sites:\n.* MiB in +[0-9]+ blocks: ")
        self.assertRegex((child.out + child.err).decode(), r"memory: RSS [0-9.]+ MiB, anonymous [0-9.]+ MiB")


class FilterArgumentTests(SynchronousTestCase):
    """Words after the options are mitmdump's filter argument: they set dumper_filter."""

    def parse(self, *arguments: str) -> tap.Options:
        """Parse C{twistd mitm} arguments in this process (with the shared confdir)."""
        config = tap.Options()
        config.parseOptions(["--set", f"confdir={shared_confdir()}", *arguments])
        self.addCleanup(logging.getLogger().removeHandler, install_logging_bridge())
        return config

    def test_words_are_joined(self) -> None:
        """Several words form one expression, joined with spaces."""
        registry = self.parse("-q", "~m", "POST", "&", "~d", "example.com").registry
        self.assertEqual(registry.dumper_filter, "~m POST & ~d example.com")
        self.assertEqual(registry.save_stream_filter, "~m POST & ~d example.com")

    def test_argument_wins_over_set(self) -> None:
        """The argument is applied after --set dumper_filter, as mitmdump applies it."""
        self.assertEqual(self.parse("--set", "dumper_filter=~q", "~s").registry.dumper_filter, "~s")
        self.assertIsNone(self.parse().registry.dumper_filter)
