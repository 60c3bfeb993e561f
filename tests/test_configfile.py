# -*- test-case-name: tests.test_configfile -*-
"""Tests for L{twisted_mitm.configfile}: reading C{config.yaml}, and its place among the
command line's sources of options (L{twisted_mitm.tap})."""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.support import shared_confdir
from twisted_mitm import configfile, tap
from twisted_mitm.configfile import ConfigError, parse
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.options import default_options

SAMPLE = """\
# options for the test proxy
listen_port: 8081   # a comment after a value
ssl_insecure: true
proxyauth: "@~/.mitmproxy/htpasswd"
ignore_hosts:
  - '^example\\.com:443$'
  - "internal.example"   # quoted
allow_hosts: []
scripts: [one.py, 'two, three.py']
body_size_limit: null
stream_large_bodies:
mode: regular
"""


class ParseTests(SynchronousTestCase):
    """The flat YAML of configuration files, read strictly."""

    def test_values(self) -> None:
        """Scalars (plain, quoted, with comments), block and flow lists, nulls."""
        self.assertEqual(
            parse(SAMPLE),
            {
                "listen_port": "8081",
                "ssl_insecure": "true",
                "proxyauth": "@~/.mitmproxy/htpasswd",
                "ignore_hosts": ["^example\\.com:443$", "internal.example"],
                "allow_hosts": [],
                "scripts": ["one.py", "two, three.py"],
                "body_size_limit": None,
                "stream_large_bodies": None,
                "mode": "regular",
            },
        )

    def test_quoting(self) -> None:
        """Single quotes double their quote, double quotes have escapes, a # inside quotes stays."""
        text = "a: 'it''s # here'\nb: \"tab\\there\"\nc: x#y\n"
        self.assertEqual(parse(text), {"a": "it's # here", "b": "tab\there", "c": "x#y"})

    def test_refused(self) -> None:
        """What the reader does not take is an error naming the file, the line and the problem."""
        cases = {
            "a: 1\nb:\n  c: 2\n": "f.yaml:3: expected 'name: value'; nested mappings",
            "text: |\n  more\n": "f.yaml:1: a value starting with '|' must be quoted",
            "proxyauth: @/etc/htpasswd\n": "f.yaml:1: a value starting with '@' must be quoted (YAML reserves it)",
            "a: 1\na: 2\n": "f.yaml:2: a is set twice",
            "just words\n": "f.yaml:1: expected 'name: value', not 'just words'",
            "- item\n": "f.yaml:1: expected 'name: value'; nested mappings",
            "a: [1, [2]]\n": "f.yaml:1: nested lists and mappings are not supported",
            "a: [1, 2\n": "f.yaml:1: a [list] must end on its line",
            "a: 'open\n": "f.yaml:1: unterminated 'quoted' value",
            "a:\n\t- x\n": "f.yaml:2: tabs cannot indent YAML",
        }
        for text, message in cases.items():
            error = self.assertRaises(ConfigError, parse, text, "f.yaml")
            self.assertIn(message, str(error), text)


class LoadTests(SynchronousTestCase):
    """config.yaml applied to the option registry."""

    def setUp(self) -> None:
        self.confdir = os.path.abspath(self.mktemp())
        os.makedirs(self.confdir)

    def write(self, text: str, name: str = "config.yaml") -> str:
        path = os.path.join(self.confdir, name)
        with open(path, "w") as file:
            file.write(textwrap.dedent(text))
        return path

    def test_no_file(self) -> None:
        """Without a file nothing changes."""
        options = default_options()
        self.assertIsNone(configfile.load(options, self.confdir))
        self.assertEqual(options.listen_port, 8080)

    def test_typed_values(self) -> None:
        """Each key sets its option, typed as on the command line; scripts are relative to the file."""
        path = self.write(
            """
            listen_port: 9000
            ssl_insecure: yes
            ignore_hosts: [a.example, b.example]
            stream_large_bodies: 3m
            scripts:
              - hooks.py
              - /abs/other.py
            """
        )
        options = default_options()
        self.assertEqual(configfile.load(options, self.confdir), path)
        self.assertEqual((options.listen_port, options.ssl_insecure), (9000, True))
        self.assertEqual(options.ignore_hosts, ["a.example", "b.example"])
        self.assertEqual(options.stream_large_bodies, "3m")
        self.assertEqual(options.scripts, [os.path.join(self.confdir, "hooks.py"), "/abs/other.py"])

    def test_yml_name(self) -> None:
        """config.yml is read when there is no config.yaml."""
        self.write("flow_detail: 0\n", "config.yml")
        options = default_options()
        configfile.load(options, self.confdir)
        self.assertEqual(options.flow_detail, 0)

    def test_unknown_names_wait(self) -> None:
        """A name no option has yet waits for a script to declare it."""
        self.write("my_script_option: 5\n")
        options = default_options()
        configfile.load(options, self.confdir)
        self.assertEqual(options.deferred_names(), ["my_script_option"])
        options.add_option("my_script_option", int, 0, "A script's option.")
        options.process_deferred()
        self.assertEqual(options.my_script_option, 5)

    def test_bad_value_names_file(self) -> None:
        """A bad value is an OptionsError naming the file and the option."""
        path = self.write("listen_port: many\n")
        error = self.assertRaises(OptionsError, configfile.load, default_options(), self.confdir)
        self.assertEqual(str(error), f"{path}: listen_port: 'many' is not an integer")


class CommandLineTests(SynchronousTestCase):
    """twistd mitm reads config.yaml from the confdir; the command line overrides it."""

    def setUp(self) -> None:
        self.confdir = os.path.abspath(self.mktemp())
        shutil.copytree(shared_confdir(), self.confdir)
        root = logging.getLogger()
        self.addCleanup(root.setLevel, root.level)
        self.addCleanup(setattr, root, "handlers", list(root.handlers))
        self.modules = set(sys.modules)
        self.addCleanup(lambda: [sys.modules.pop(name) for name in set(sys.modules) - self.modules if name.startswith("__twisted_mitm_script__")])

    def parsed(self, *arguments: str) -> tap.Options:
        config = tap.Options()
        config.parseOptions(["--set", f"confdir={self.confdir}", *arguments])
        return config

    def test_file_then_command_line(self) -> None:
        """Options come from the file; flags and --set win over it; a script's option set in the file reaches it."""
        with open(os.path.join(self.confdir, "tagger.py"), "w") as script:
            script.write("def load(loader):\n    loader.add_option('tag', str, 'none', 'A tag.')\n")
        with open(os.path.join(self.confdir, "config.yaml"), "w") as file:
            file.write("listen_port: 9001\nflow_detail: 0\nssl_insecure: true\nscripts: [tagger.py]\ntag: from-file\n")
        registry = self.parsed("-p", "9002", "--set", "flow_detail=1").registry
        self.assertEqual((registry.listen_port, registry.flow_detail, registry.ssl_insecure), (9002, 1, True))
        self.assertEqual(registry.tag, "from-file")
        self.assertEqual(self.parsed("--set", "tag=from-command-line").registry.tag, "from-command-line")

    def test_error_is_one_line(self) -> None:
        """A config.yaml mistake stops start-up with one line naming the file, exit status 2."""
        path = os.path.join(self.confdir, "config.yaml")
        with open(path, "w") as file:
            file.write("ssl_insecure: maybe\n")
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        error = self.assertRaises(SystemExit, self.parsed)
        self.assertEqual(error.code, 2)
        self.assertEqual(stderr.getvalue(), f"twisted_mitm: error: {path}: ssl_insecure: 'maybe' is not a boolean (use true/false, yes/no, 1/0, on/off)\n")
