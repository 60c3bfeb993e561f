# -*- test-case-name: tests.test_spec -*-
"""Tests for L{twisted_mitm.utils.spec}: mitmproxy's C{[SEP filter]SEP subject SEP replacement} rules."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.flows import request_flow, response_flow
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.utils.spec import match_all, parse_rules, parse_spec, split_rule


class ParseSpecTests(SynchronousTestCase):
    """The parts of a rule, whatever its separator."""

    def test_three_parts(self) -> None:
        """With three parts the first is a filter expression, parsed."""
        matches, subject, replacement = parse_spec("/~s/foo/bar")
        self.assertEqual((subject, replacement), ("foo", "bar"))
        self.assertTrue(matches(response_flow()))
        self.assertFalse(matches(request_flow()))

    def test_two_parts_match_every_flow(self) -> None:
        """Without a filter the rule applies to every flow."""
        matches, subject, replacement = parse_spec(":foo:bar")
        self.assertEqual((matches, subject, replacement), (match_all, "foo", "bar"))

    def test_any_separator(self) -> None:
        """The first character separates, so the parts may hold slashes."""
        self.assertEqual(parse_spec("|~q|a/b|https://x/y")[1:], ("a/b", "https://x/y"))

    def test_last_part_keeps_extra_separators(self) -> None:
        """Separators past the third part belong to the replacement."""
        self.assertEqual(parse_spec("/~q/name/a/b/")[1:], ("name", "a/b/"))

    def test_empty_parts_allowed(self) -> None:
        """An empty replacement is a part like any other."""
        self.assertEqual(parse_spec("/~q/name/")[1:], ("name", ""))

    def test_mistakes(self) -> None:
        """An empty rule, one part, or a bad filter: one line each."""
        for rule, expected in [
            ("", "the rule is empty"),
            ("/onlyone", "expected /subject/replacement or /filter/subject/replacement"),
            ("/~x/a/b", "unknown operator '~x'"),
        ]:
            with self.assertRaises(ValueError) as caught:
                parse_spec(rule)
            self.assertIn(expected, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_split_rule(self) -> None:
        """C{split_rule} splits at the rule's own first character, at most into the count given."""
        self.assertEqual(split_rule("#a#b#c", 2), ["a", "b#c"])


class ParseRulesTests(SynchronousTestCase):
    """Parsing every rule of an option."""

    def test_all_parsed(self) -> None:
        """Each rule is parsed, in order."""
        self.assertEqual(parse_rules("x", ["a", "bb"], len), [1, 2])

    def test_bad_rule_named(self) -> None:
        """The first bad rule stops with an OptionsError naming the option and the rule."""

        def parse(rule: str) -> str:
            raise ValueError("no good")

        with self.assertRaises(OptionsError) as caught:
            parse_rules("modify_body", ["/a/b"], parse)
        self.assertEqual(str(caught.exception), "modify_body: cannot parse '/a/b': no good")
