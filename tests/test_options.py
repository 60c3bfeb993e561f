"""Tests for L{twisted_mitm.options}."""

from __future__ import annotations

from typing import Optional, Sequence

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.exceptions import OptionsError
from twisted_mitm.options import Options, default_options, parse_bool, parse_size


class ParseSizeTests(SynchronousTestCase):
    """SIZE texts are integers with an optional k/m/g suffix in powers of 1024."""

    def test_sizes(self) -> None:
        """Plain numbers are bytes; suffixes multiply by 1024, 1024**2 and 1024**3 in any case."""
        cases = {
            "1": 1, "0": 0, "512k": 512 * 1024, "3m": 3 * 1024**2, "3M": 3 * 1024**2,
            "1g": 1024**3, "2G": 2 * 1024**3, "10K": 10240,
        }
        self.assertEqual({text: parse_size(text) for text in cases}, cases)

    def test_not_sizes(self) -> None:
        """Anything else is refused with the text and examples."""
        for text in ["3x", "", "m", "1.5m", "-1", "1 kb", "1t"]:
            error = self.assertRaises(ValueError, parse_size, text)
            self.assertEqual(str(error), f"{text!r} is not a size (examples: 512k, 3m, 1g)")


class ParseBoolTests(SynchronousTestCase):
    """Booleans accept true/false, yes/no, 1/0 and on/off in any case."""

    def test_booleans(self) -> None:
        """Each accepted spelling maps to its value."""
        for text in ["true", "YES", "1", "On"]:
            self.assertIs(parse_bool(text), True)
        for text in ["false", "No", "0", "OFF"]:
            self.assertIs(parse_bool(text), False)

    def test_not_boolean(self) -> None:
        """Other texts are refused with the accepted spellings."""
        error = self.assertRaises(ValueError, parse_bool, "maybe")
        self.assertEqual(
            str(error), "'maybe' is not a boolean (use true/false, yes/no, 1/0, on/off)"
        )


def typed_options() -> Options:
    """One option of every supported typespec."""
    options = Options()
    options.add_option("flag", bool, False, "A boolean.")
    options.add_option("count", int, 1, "An integer.")
    options.add_option("label", str, "x", "A string.")
    options.add_option("ratio", float, 0.5, "A float.")
    options.add_option("limit", Optional[int], None, "An optional integer.")
    options.add_option("note", Optional[str], None, "An optional string.")
    options.add_option("scale", Optional[float], None, "An optional float.")
    options.add_option("names", Sequence[str], [], "Strings.")
    return options


class SetTests(SynchronousTestCase):
    """C{set} parses C{name=value} texts according to each option's type."""

    def setUp(self) -> None:
        self.options = typed_options()

    def test_every_type(self) -> None:
        """Each typespec parses its text into a value of its type."""
        self.options.set(
            "flag=yes", "count=42", "label=hello=world", "ratio=2.5",
            "limit=7", "note=text", "scale=1.5", "names=a",
        )
        self.assertEqual(
            [value for _, value in self.options.items()],
            [42, True, "hello=world", 7, ["a"], "text", 2.5, 1.5],
        )

    def test_sequence_collects_values(self) -> None:
        """A sequence option given several times in one call gets all values, in order."""
        self.options.set("names=a", "names=b", "names=c")
        self.assertEqual(self.options.names, ["a", "b", "c"])
        self.options.set("names=")
        self.assertEqual(self.options.names, [])

    def test_optional_unset(self) -> None:
        """An empty value or a bare name unsets an optional option."""
        self.options.set("limit=3", "note=n", "scale=2")
        self.options.set("limit=", "note", "scale=")
        self.assertEqual(
            (self.options.limit, self.options.note, self.options.scale), (None, None, None)
        )

    def test_bare_boolean_and_toggle(self) -> None:
        """A bare boolean name means true, and C{toggle} flips it (mitmproxy's spellings)."""
        self.options.set("flag")
        self.assertIs(self.options.flag, True)
        self.options.set("flag=toggle")
        self.assertIs(self.options.flag, False)

    def test_bad_values(self) -> None:
        """A bad text gives one line naming the option and the problem."""
        cases = {
            "count=abc": "count: 'abc' is not an integer",
            "ratio=fast": "ratio: 'fast' is not a number",
            "flag=maybe": "flag: 'maybe' is not a boolean (use true/false, yes/no, 1/0, on/off)",
            "count": "count: a value is required (NAME=VALUE)",
        }
        for spec, message in cases.items():
            error = self.assertRaises(OptionsError, self.options.set, spec)
            self.assertEqual(str(error), message)

    def test_single_value_options_given_twice(self) -> None:
        """Only sequence options may be given more than once in one call."""
        error = self.assertRaises(OptionsError, self.options.set, "count=1", "count=2")
        self.assertEqual(str(error), "count: given more than once ('1', '2')")

    def test_unknown(self) -> None:
        """An unknown name is refused, and nothing of that call is applied."""
        error = self.assertRaises(OptionsError, self.options.set, "count=5", "nope=1")
        self.assertEqual(str(error), "unknown option: nope")
        self.assertEqual(self.options.count, 1)

    def test_deferred(self) -> None:
        """Deferred unknown names wait for their option to be declared."""
        self.options.set("count=5", "later=3", "names=x", "names=y", "absent=1", defer=True)
        self.assertEqual(self.options.count, 5)
        self.assertEqual(self.options.deferred_names(), ["absent", "later"])
        self.options.add_option("later", int, 0, "Declared by a script.")
        self.options.process_deferred()
        self.assertEqual(self.options.later, 3)
        self.assertEqual(self.options.deferred_names(), ["absent"])

    def test_deferred_bad_value(self) -> None:
        """A deferred text is checked when its option appears."""
        self.options.set("later=abc", defer=True)
        self.options.add_option("later", int, 0, "Declared by a script.")
        error = self.assertRaises(OptionsError, self.options.process_deferred)
        self.assertEqual(str(error), "later: 'abc' is not an integer")


class UpdateTests(SynchronousTestCase):
    """Typed updates are checked, announced to subscribers and undone when refused."""

    def setUp(self) -> None:
        self.options = typed_options()
        self.notified: list[set[str]] = []
        self.options.subscribe(self.notified.append)

    def test_attribute_assignment(self) -> None:
        """Assigning an attribute is an update, announced with the option's name."""
        self.options.count = 3
        self.assertEqual(self.options.count, 3)
        self.assertEqual(self.notified, [{"count"}])

    def test_type_checked(self) -> None:
        """A value of the wrong type is refused; an int is accepted for a float option."""
        self.options.update(ratio=2)
        self.assertEqual(self.options.ratio, 2.0)
        for name, value, message in [
            ("count", "3", "count: expected int, got '3'"),
            ("count", True, "count: expected int, got True"),
            ("flag", 1, "flag: expected bool, got 1"),
            ("names", "abc", "names: expected sequence of str, got 'abc'"),
            ("limit", 1.5, "limit: expected optional int, got 1.5"),
        ]:
            error = self.assertRaises(OptionsError, self.options.update, **{name: value})
            self.assertEqual(str(error), message)
        self.assertEqual(len(self.notified), 1)

    def test_unknown(self) -> None:
        """Updating an unknown option is refused."""
        error = self.assertRaises(OptionsError, self.options.update, nope=1)
        self.assertEqual(str(error), "unknown option: nope")

    def test_sequence_values_are_copies(self) -> None:
        """Mutating a list read from the options does not change the option."""
        self.options.names = ["a"]
        self.options.names.append("b")
        self.assertEqual(self.options.names, ["a"])

    def test_rollback(self) -> None:
        """A subscriber raising C{OptionsError} undoes the update, and everyone is told again."""

        def refuse(updated: set[str]) -> None:
            if self.options.count > 10:
                raise OptionsError("count: too large")

        self.options.subscribe(refuse)
        error = self.assertRaises(OptionsError, self.options.update, count=11, label="y")
        self.assertEqual(str(error), "count: too large")
        self.assertEqual((self.options.count, self.options.label), (1, "x"))
        self.assertEqual(self.notified, [{"count", "label"}, {"count", "label"}])

    def test_choices(self) -> None:
        """An option with choices refuses other values, also as a default."""
        self.options.add_option("colour", str, "red", "Pick.", choices=["red", "blue"])
        error = self.assertRaises(OptionsError, self.options.set, "colour=green")
        self.assertEqual(str(error), "colour: 'green' is not supported (supported: red, blue)")
        self.assertRaises(
            OptionsError, self.options.add_option, "shade", str, "x", "Pick.", ["a"]
        )

    def test_unsupported_typespec(self) -> None:
        """Typespecs outside mitmproxy's set are refused when declared."""
        error = self.assertRaises(OptionsError, self.options.add_option, "d", dict, {}, "No.")
        self.assertEqual(str(error), "d: unsupported option type <class 'dict'>")

    def test_redeclare(self) -> None:
        """Declaring an option again keeps its value if the type is the same, else resets it."""
        self.options.count = 4
        self.options.add_option("count", int, 1, "Again.")
        self.assertEqual(self.options.count, 4)
        self.options.add_option("count", str, "one", "Now a string.")
        self.assertEqual(self.options.count, "one")

    def test_union_syntax(self) -> None:
        """C{X | None} is accepted like C{Optional[X]}."""
        self.options.add_option("port", int | None, None, "New style.")
        self.assertEqual(self.options.typespec_name("port"), "optional int")


class DefaultOptionsTests(SynchronousTestCase):
    """The built-in options carry mitmproxy's names, defaults and checks."""

    def setUp(self) -> None:
        self.options = default_options()

    def test_defaults(self) -> None:
        """The documented defaults."""
        expected = {
            "listen_host": "127.0.0.1", "listen_port": 8080, "mode": ["regular"],
            "scripts": [], "ssl_insecure": False, "ignore_hosts": [], "allow_hosts": [],
            "flow_detail": 1, "confdir": "~/.mitmproxy", "stream_large_bodies": None,
            "stream_websockets": False, "body_size_limit": None,
            "ssl_verify_upstream_trusted_ca": None, "show_ignored_hosts": False,
            "hardump": "", "proxyauth": None, "dumper_filter": None, "view_filter": None,
            "content_view_lines_cutoff": 512,
        }
        self.assertEqual({name: getattr(self.options, name) for name in expected}, expected)
        self.assertEqual(self.options.default("listen_port"), 8080)

    def test_help_listing(self) -> None:
        """Every option has help text and a type name."""
        for name, _ in self.options.items():
            self.assertTrue(self.options.help(name), name)
            self.assertTrue(self.options.typespec_name(name), name)
        self.assertEqual(self.options.typespec_name("stream_large_bodies"), "optional str")
        self.assertEqual(self.options.typespec_name("scripts"), "sequence of str")

    def test_validators(self) -> None:
        """Bad values give one line naming the option and the problem."""
        cases = {
            "stream_large_bodies=3x":
                "stream_large_bodies: '3x' is not a size (examples: 512k, 3m, 1g)",
            "ssl_insecure=maybe":
                "ssl_insecure: 'maybe' is not a boolean (use true/false, yes/no, 1/0, on/off)",
            "listen_port=abc": "listen_port: 'abc' is not an integer",
            "listen_port=70000": "listen_port: 70000 is not a port number (0-65535)",
            "ignore_hosts=(":
                "ignore_hosts: '(' is not a valid regular expression: "
                "missing ), unterminated subpattern",
            "mode=bogus":
                "mode: invalid mode 'bogus': unknown mode 'bogus' "
                "(known: regular, reverse, upstream, socks5, transparent)",
            "mode=reverse:ftp://x":
                "mode: invalid mode 'reverse:ftp://x': the server must be http://host[:port] or https://host[:port]",
            "mode=socks5@port": "mode: invalid mode 'socks5@port': 'port' is not [host:]port",
            "upstream_auth=nocolon": "upstream_auth: 'nocolon' is not user:pass",
            "proxyauth=secret": "proxyauth: 'secret' is not of the form user:pass, any or @htpasswd-path",
            "upstream_read_timeout=-1":
                "upstream_read_timeout: -1 is not a number of seconds (0 or more)",
            "dumper_filter=~q&~s":
                "dumper_filter: Invalid filter expression: '~q&~s': "
                "'~q&~s' is not an operator: put a space after ~q (at column 1)",
            "view_filter=~h [":
                "view_filter: Invalid filter expression: '~h [': "
                "~h '[' is not a valid regex: unterminated character set",
            "content_view_lines_cutoff=0": "content_view_lines_cutoff: 0 is not a positive number",
        }
        for spec, message in cases.items():
            error = self.assertRaises(OptionsError, self.options.set, spec)
            self.assertEqual(str(error), message)
            self.assertNotIn("\n", str(error))

    def test_filters_set_and_unset(self) -> None:
        """A good filter expression is kept as given; an empty value unsets it."""
        self.options.set("dumper_filter=~d example.com & !~s", "view_filter=~websocket")
        self.assertEqual((self.options.dumper_filter, self.options.view_filter), ("~d example.com & !~s", "~websocket"))
        self.options.set("dumper_filter=")
        self.assertIsNone(self.options.dumper_filter)

    def test_ignore_and_allow_hosts_exclusive(self) -> None:
        """C{ignore_hosts} and C{allow_hosts} cannot both be set."""
        self.options.set("ignore_hosts=example\\.com:443")
        error = self.assertRaises(OptionsError, self.options.set, "allow_hosts=.*")
        self.assertEqual(
            str(error), "ignore_hosts and allow_hosts are mutually exclusive; use one of them"
        )
        self.assertEqual(self.options.allow_hosts, [])
