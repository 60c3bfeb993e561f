# -*- test-case-name: tests.test_streamsub -*-
"""Tests for L{twisted_mitm.utils.streamsub}: C{re.sub} over a body given in pieces."""

from __future__ import annotations

import random
import re

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.utils.streamsub import (
    DEFAULT_WINDOW,
    MAX_WINDOW,
    StreamSubstitution,
    literal_replacement,
    search_window,
    template_replacement,
)


def substitute_in_pieces(pattern: re.Pattern[bytes], template: bytes, body: bytes, sizes: list[int]) -> bytes:
    """Feed C{body} cut into pieces of the given sizes (cycled) and join what comes out."""
    substitution = StreamSubstitution(pattern, template_replacement(pattern, template))
    out, position, index = [], 0, 0
    while position < len(body):
        size = sizes[index % len(sizes)]
        out.append(substitution.feed(body[position : position + size]))
        position, index = position + size, index + 1
    out.append(substitution.feed(b"", final=True))
    return b"".join(out)


class WindowTests(SynchronousTestCase):
    """How much a substitution holds back."""

    def test_bounded_regexes(self) -> None:
        """The longest text the regex inspects: its longest match, lookarounds and anchors."""
        rows = [(rb"foo", 3), (rb"a|bcd", 3), (rb"x{2,5}", 5), (rb"ab(?=cd)", 4), (rb"(?<=ab)c", 3), (rb"\bword\b", 6), (rb"^a$", 3)]
        self.assertEqual([(p, search_window(re.compile(p))) for p, _ in rows], rows)

    def test_unbounded_regexes(self) -> None:
        """A regex that can inspect an unbounded stretch, or more than 64 KiB, gets 4 KiB."""
        for pattern in (rb"a+", rb".*", rb"x{%d}" % (MAX_WINDOW + 1), rb"a(?=b*)"):
            self.assertEqual(search_window(re.compile(pattern, re.DOTALL)), DEFAULT_WINDOW, pattern)

    def test_empty_regex(self) -> None:
        """Even a regex that matches only the empty string holds back one byte (for its context)."""
        self.assertEqual(search_window(re.compile(b"")), 1)


class SameAsWholeBodyTests(SynchronousTestCase):
    """Within the window, the result is exactly C{re.sub} over the whole body."""

    def test_match_split_across_pieces(self) -> None:
        """A match cut in two by a piece boundary is found and replaced."""
        pattern = re.compile(b"NEEDLE")
        self.assertEqual(substitute_in_pieces(pattern, b"pin", b"xxNEEDLExxNEEDLE", [5]), b"xxpinxxpin")

    def test_random_pieces(self) -> None:
        """For a range of regexes (groups, lookarounds, anchors, alternations, empty matches) and
        random bodies cut at random places, the output equals C{pattern.sub} on the whole body."""
        rng = random.Random(14)
        patterns = [rb"foo", rb"(?<=a)b", rb"\bab\b", rb"^a", rb"a$", rb"(ab|abc)d", rb"x{2,5}", rb"(a)(b)", rb"b(?=ca)", rb"x*", rb"(?m)^o"]
        wrong = []
        for source in patterns:
            pattern = re.compile(source, re.DOTALL)
            for _ in range(100):
                body = bytes(rng.choice(b"abcfox \n") for _ in range(rng.randrange(0, 60)))
                sizes = [rng.randrange(1, 8) for _ in range(5)]
                got = substitute_in_pieces(pattern, rb"<\g<0>>", body, sizes)
                if got != pattern.sub(rb"<\g<0>>", body):
                    wrong.append((source, body, sizes))
        self.assertEqual(wrong, [])

    def test_group_references(self) -> None:
        """The replacement is a C{re.sub} template."""
        pattern = re.compile(rb"(\w+)@(\w+)")
        self.assertEqual(substitute_in_pieces(pattern, rb"\2 at \1", b"mail: joe@home.", [3]), b"mail: home at joe.")

    def test_literal_replacement(self) -> None:
        """A literal replacement is used as it is, backslashes included."""
        pattern = re.compile(b"x")
        substitution = StreamSubstitution(pattern, literal_replacement(rb"\1\d"))
        self.assertEqual(substitution.feed(b"axb", final=True), rb"a\1\db")

    def test_count(self) -> None:
        """C{count} says how many matches were replaced."""
        pattern = re.compile(b"o")
        substitution = StreamSubstitution(pattern, literal_replacement(b"0"))
        substitution.feed(b"foo bo")
        substitution.feed(b"", final=True)
        self.assertEqual(substitution.count, 3)

    def test_bad_template_refused_early(self) -> None:
        """A template naming a group the regex lacks fails when made, not at the first match."""
        self.assertRaises(re.error, template_replacement, re.compile(b"(a)"), rb"\2")


class BoundedTests(SynchronousTestCase):
    """What a substitution holds, and what the window means for longer matches."""

    def test_held_back_bounded(self) -> None:
        """Whatever the pieces, at most two windows are kept between them, and everything
        else is given back at once."""
        pattern = re.compile(b"NEEDLE")
        substitution = StreamSubstitution(pattern, literal_replacement(b"pin"))
        given_back = 0
        for _ in range(64):
            given_back += len(substitution.feed(b"z" * 65536))
            self.assertLessEqual(substitution.held, 2 * substitution.window)
        self.assertEqual(given_back, 64 * 65536 - substitution.window)

    def test_longer_match_cut_at_window(self) -> None:
        """An unbounded regex: a run longer than the window comes out as several matches, as documented."""
        pattern = re.compile(b"a+")
        body = b"a" * (3 * DEFAULT_WINDOW)
        out = substitute_in_pieces(pattern, b"A", body, [DEFAULT_WINDOW])
        self.assertGreater(out.count(b"A"), 1)
        self.assertNotIn(b"a", out)
