# -*- test-case-name: tests.test_streamsub -*-
"""C{re.sub} over a body that arrives in pieces, in bounded memory.

A L{StreamSubstitution} is fed a body chunk by chunk and gives back the replaced text
as it goes. It holds back the last L{search_window} bytes it has seen, so that a match
split across chunks is still found whole: any match that, together with what its
lookarounds and anchors look at, fits in the window is found and replaced exactly as
C{pattern.sub} over the whole body would. It also keeps up to a window of the text
already given back, as context for lookbehinds, C{\\b} and C{^}.

The window is the longest stretch of text the regex can inspect, when that is finite
and at most L{MAX_WINDOW} (64 KiB): C{foo} needs 3 bytes, C{ab(?=cd)} 4. A regex that
can inspect more (C{a+}, C{.*}, C{x{1,100000}}) gets L{DEFAULT_WINDOW} (4 KiB): its
matches longer than that may come out cut in two (each part matched on its own) or
missed. Memory per substitution is at most two windows plus the chunk being processed.

Pure standard library. Computing the window reads the parsed form of the regex from
the C{re} module's parser, which Python has shipped in this shape since 3.0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

try:  # Python 3.11 and later
    from re import _constants as sre_constants, _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

#: The window of a regex that can inspect an unbounded (or very long) stretch of text.
DEFAULT_WINDOW = 4 * 1024
#: The largest window a regex of bounded width gets; wider ones get L{DEFAULT_WINDOW}.
MAX_WINDOW = 64 * 1024

_LOOKAROUNDS = frozenset({sre_constants.ASSERT, sre_constants.ASSERT_NOT})

Replace = Callable[["re.Match[bytes]"], bytes]
"""Gives the text that replaces one match."""


def _subpatterns(value: object) -> Iterable[sre_parse.SubPattern]:
    """The parsed subpatterns inside one node's argument, however nested."""
    if isinstance(value, sre_parse.SubPattern):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _subpatterns(item)


def _inspected_beyond_match(parsed: sre_parse.SubPattern) -> int:
    """How far the lookarounds and anchors of C{parsed} may look outside the match itself:
    the sum of their widths (one byte per anchor such as C{\\b}, C{^} or C{$})."""
    total = 0
    for op, argument in parsed:
        if op in _LOOKAROUNDS:
            _, body = argument
            total += body.getwidth()[1] + _inspected_beyond_match(body)
        elif op == sre_constants.AT:
            total += 1
        else:
            total += sum(_inspected_beyond_match(inner) for inner in _subpatterns(argument))
    return total


def search_window(pattern: re.Pattern[bytes]) -> int:
    """How many bytes a L{StreamSubstitution} of C{pattern} holds back (see the module docstring)."""
    parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    reach = parsed.getwidth()[1] + _inspected_beyond_match(parsed)
    return max(reach, 1) if reach <= MAX_WINDOW else DEFAULT_WINDOW


def template_replacement(pattern: re.Pattern[bytes], template: bytes) -> Replace:
    """Replace each match with C{template} as C{re.sub} does (C{\\1}, C{\\g<name>}, escapes).

    @raise re.error: the template refers to a group the pattern does not have, or holds
        a bad escape (checked now, not at the first match).
    @raise IndexError: the template names a group the pattern does not have.
    """
    pattern.sub(template, b"")
    if b"\\" not in template:
        return lambda match: template
    return lambda match: match.expand(template)


def literal_replacement(text: bytes) -> Replace:
    """Replace each match with C{text} exactly as it is."""
    return lambda match: text


class StreamSubstitution:
    """Replaces every match of one regex in a body given in pieces.

    @ivar window: the bytes held back from one piece to the next.
    @ivar count: the replacements made so far.
    """

    def __init__(self, pattern: re.Pattern[bytes], replace: Replace) -> None:
        self.window = search_window(pattern)
        self.count = 0
        self._pattern = pattern
        self._replace = replace
        #: context already given back, then the text not given back yet
        self._seen = b""
        #: where in C{_seen} the text not given back yet begins
        self._start = 0

    @property
    def held(self) -> int:
        """The bytes kept between pieces: context, and text not given back yet."""
        return len(self._seen)

    def feed(self, data: bytes, final: bool = False) -> bytes:
        """Take the next piece of the body (with C{final}, the last one, maybe empty) and
        return the replaced text that is now certain."""
        text = self._seen + data
        limit = len(text) if final else len(text) - self.window
        pieces = []
        position = self._start
        for match in self._pattern.finditer(text, self._start):
            if not final and match.start() >= limit:
                break
            pieces += [text[position : match.start()], self._replace(match)]
            position = match.end()
            self.count += 1
        given_back = max(position, limit)
        pieces.append(text[position:given_back])
        context_start = max(0, given_back - self.window)
        self._seen = text[context_start:]
        self._start = given_back - context_start
        return b"".join(pieces)
