# -*- test-case-name: tests.test_flowfilter -*-
"""mitmproxy's filter language: C{parse("~d example.com & !~s")} is a callable that
tells which flows match.

The grammar and the matching rules are mitmproxy 12's, quirks included (each one is
pointed out below and listed in C{docs/flows.md}). mitmproxy parses with pyparsing 3;
this is a small hand-written recursive-descent parser that accepts exactly the same
texts and builds the same trees. Regexes are case-insensitive unless the environment
variable C{MITMPROXY_CASE_SENSITIVE_FILTERS} is C{1}, as in mitmproxy.

Pure standard library: flows are read through their documented attributes and told
apart by C{flow.type} (C{"http"}, C{"tcp"}), so that L{twisted_mitm.options} can check
filter options with L{parse} while staying first in the import order. Addons that
select flows (the flow log's C{dumper_filter}, ...) parse once at configure time.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # for the hints only
    from twisted_mitm.flow import Flow
    from twisted_mitm.http import Message

CASE_SENSITIVE_VARIABLE = "MITMPROXY_CASE_SENSITIVE_FILTERS"


# -- The parsed filters --------------------------------------------------------------------

class Filter(ABC):
    """A parsed filter expression: call it with a flow to learn whether the flow matches.

    @ivar pattern: the text this filter was parsed from (for the whole expression, the
        text given to L{parse}).
    """

    pattern: str

    @abstractmethod
    def __call__(self, flow: Flow) -> bool:
        """C{True} if C{flow} matches."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.pattern!r}>"


@dataclass(repr=False)
class Term(Filter):
    """One operator with its argument, such as C{~d example.com}; a bare regex is a C{~u}.

    @ivar argument: the regex (unquoted) or the number; C{None} for operators without one.
    """

    pattern: str
    code: str
    argument: str | int | None
    test: Callable[[Flow], bool]

    def __call__(self, flow: Flow) -> bool:
        return self.test(flow)


@dataclass(repr=False)
class And(Filter):
    """Matches when all its filters match (C{a & b}, or C{a b})."""

    pattern: str
    filters: list[Filter]

    def __call__(self, flow: Flow) -> bool:
        return all(each(flow) for each in self.filters)


@dataclass(repr=False)
class Or(Filter):
    """Matches when any of its filters matches (C{a | b})."""

    pattern: str
    filters: list[Filter]

    def __call__(self, flow: Flow) -> bool:
        return any(each(flow) for each in self.filters)


@dataclass(repr=False)
class Not(Filter):
    """Matches when its filter does not (C{!a})."""

    pattern: str
    filter: Filter

    def __call__(self, flow: Flow) -> bool:
        return not self.filter(flow)


# -- What each operator looks at -----------------------------------------------------------

def _of_type(kind: str) -> Callable[[Flow], bool]:
    return lambda flow: flow.type == kind


def _is_websocket(flow: Flow) -> bool:
    return flow.type == "http" and flow.websocket is not None


def _has_response(flow: Flow) -> bool:
    return flow.type == "http" and flow.response is not None


def _lacks_response(flow: Flow) -> bool:
    return flow.type == "http" and flow.response is None


def _replayed(side: str | None) -> Callable[[Flow], bool]:
    if side is None:
        return lambda flow: flow.is_replay is not None
    return lambda flow: flow.is_replay == side


# Compiled without IGNORECASE even when every other regex has it: mitmproxy's quirk, so
# "image/PNG" is not an asset.
_ASSET_TYPES = tuple(
    re.compile(pattern)
    for pattern in (
        rb"text/javascript",
        rb"application/x-javascript",
        rb"application/javascript",
        rb"text/css",
        rb"image/.*",
        rb"font/.*",
        rb"application/font.*",
    )
)


def _http_message(flow: Flow, client: bool) -> Message | None:
    """The request (C{client}) or the response of an HTTP flow; C{None} for other flows."""
    if flow.type != "http":
        return None
    return flow.request if client else flow.response


def _content_types(flow: Flow, client: bool) -> Iterator[bytes]:
    """Every Content-Type field value of the request or the response."""
    message = _http_message(flow, client)
    if message is not None:
        yield from (value for name, value in message.headers.fields if name.lower() == b"content-type")


def _is_asset(flow: Flow) -> bool:
    return any(asset.search(value) for value in _content_types(flow, False) for asset in _ASSET_TYPES)


def _headers(flow: Flow, client: bool) -> Iterator[bytes]:
    """The request's or response's header block, one C{name: value} line per field."""
    message = _http_message(flow, client)
    if message is not None:
        yield bytes(message.headers)


def _sent(flow: Flow, client: bool) -> Iterator[bytes]:
    """What one side sent: its HTTP body (decoded if possible), WebSocket or TCP messages."""
    if flow.type == "http":
        message = _http_message(flow, client)
        if message is not None and (content := message.get_content(strict=False)) is not None:
            yield content
        messages = flow.websocket.messages if flow.websocket is not None else ()
    elif flow.type == "tcp":
        messages = flow.messages
    else:
        return
    yield from (message.content for message in messages if message.from_client == client)


def _both_sides(subjects: Callable[[Flow, bool], Iterator[bytes]]) -> Callable[[Flow], Iterator[bytes]]:
    return lambda flow: chain(subjects(flow, True), subjects(flow, False))


def _one_side(subjects: Callable[[Flow, bool], Iterator[bytes]], client: bool) -> Callable[[Flow], Iterator[bytes]]:
    return lambda flow: subjects(flow, client)


def _method(flow: Flow) -> Iterator[bytes]:
    if flow.type == "http":
        yield flow.request.data.method


def _hosts(flow: Flow) -> Iterator[str]:
    """The host the request goes to, then the Host header's host."""
    if flow.type == "http":
        yield flow.request.host
        yield flow.request.pretty_host


def _url(flow: Flow) -> Iterator[str]:
    if flow.type == "http":
        yield flow.request.pretty_url


def _address(address: tuple[str, int] | None) -> Iterator[str]:
    if address:
        yield f"{address[0]}:{address[1]}"


def _metadata(flow: Flow) -> Iterator[str]:
    yield "\n".join(f"{key}: {value}" for key, value in flow.metadata.items())


# -- The operator table --------------------------------------------------------------------

@dataclass(frozen=True)
class _Flag:
    """An operator without argument, such as C{~s}."""

    code: str
    help: str
    test: Callable[[Flow], bool]


@dataclass(frozen=True)
class _Search:
    """An operator whose regex is searched in the texts C{subjects} yields.

    @ivar binary: the regex is encoded as UTF-8 and searched in bytes, as mitmproxy does
        for bodies, headers and methods; otherwise it is searched in str.
    """

    code: str
    help: str
    subjects: Callable[[Flow], Iterable[bytes]] | Callable[[Flow], Iterable[str]]
    binary: bool
    flags: int = 0


@dataclass(frozen=True)
class _Number:
    """An operator taking a decimal number: only C{~c}."""

    code: str
    help: str
    test: Callable[[Flow, int], bool]


def _status_code_is(flow: Flow, code: int) -> bool:
    return _has_response(flow) and flow.response.status_code == code


_FLAGS = {
    flag.code: flag
    for flag in (
        _Flag("a", "Response is an asset: JavaScript, CSS, image or font", _is_asset),
        _Flag("all", "Every flow", lambda flow: True),
        _Flag("dns", "DNS flows (never: twisted_mitm has none)", _of_type("dns")),
        _Flag("e", "Flow has an error", lambda flow: bool(flow.error)),
        _Flag("http", "HTTP flows, WebSocket ones included", _of_type("http")),
        _Flag("marked", "Marked flows", lambda flow: bool(flow.marked)),
        _Flag("q", "Request without a response (yet)", _lacks_response),
        _Flag("replay", "Replayed flows", _replayed(None)),
        _Flag("replayq", "Flows whose request was replayed", _replayed("request")),
        _Flag("replays", "Flows whose response was replayed", _replayed("response")),
        _Flag("s", "Flow has a response", _has_response),
        _Flag("tcp", "TCP flows", _of_type("tcp")),
        _Flag("udp", "UDP flows (never: twisted_mitm has none)", _of_type("udp")),
        _Flag("websocket", "WebSocket flows", _is_websocket),
    )
}

_URL = _Search("u", "Request URL", _url, binary=False)

_SEARCHES = {
    search.code: search
    for search in (
        _Search("b", "Body of the request or response, or any message", _both_sides(_sent), True, re.DOTALL),
        _Search("bq", "Request body, or messages from the client", _one_side(_sent, True), True, re.DOTALL),
        _Search("bs", "Response body, or messages from the server", _one_side(_sent, False), True, re.DOTALL),
        _Search("comment", "Flow comment", lambda flow: (flow.comment,), False, re.MULTILINE),
        _Search("d", "Request host, or the host of its Host header", _hosts, binary=False),
        _Search("dst", "Server address, as host:port", lambda flow: _address(flow.server_conn.address), binary=False),
        _Search("h", "Request or response header, as 'name: value'", _both_sides(_headers), True, re.MULTILINE),
        _Search("hq", "Request header, as 'name: value'", _one_side(_headers, True), True, re.MULTILINE),
        _Search("hs", "Response header, as 'name: value'", _one_side(_headers, False), True, re.MULTILINE),
        _Search("m", "Request method", _method, binary=True),
        _Search("marker", "Flow mark", lambda flow: (flow.marked,), binary=False),
        _Search("meta", "Flow metadata, one 'key: value' line per entry", _metadata, False, re.MULTILINE),
        _Search("src", "Client address, as ip:port", lambda flow: _address(flow.client_conn.peername), binary=False),
        _Search("t", "Content-Type of the request or response", _both_sides(_content_types), binary=True),
        _Search("tq", "Content-Type of the request", _one_side(_content_types, True), binary=True),
        _Search("ts", "Content-Type of the response", _one_side(_content_types, False), binary=True),
        _URL,
    )
}

_NUMBERS = {"c": _Number("c", "Response status code", _status_code_is)}

help: list[tuple[str, str]] = sorted(
    [(f"~{flag.code}", flag.help) for flag in _FLAGS.values()]
    + [(f"~{search.code} regex", search.help) for search in _SEARCHES.values()]
    + [(f"~{number.code} int", number.help) for number in _NUMBERS.values()]
) + [
    ("!", "unary not"),
    ("&", "and"),
    ("|", "or"),
    ("(...)", "grouping"),
]
"""C{(syntax, meaning)} for every operator, sorted, then the combinators (mitmproxy's layout)."""


# -- The parser ----------------------------------------------------------------------------

# pyparsing's notions, which decide what mitmproxy accepts: whitespace is these four
# characters only; an operator such as ~q must be followed by whitespace, the end, or
# anything outside printable ASCII; a bare regex runs up to whitespace or one of ()~'".
_SPACE = " \t\n\r"
_PRINTABLE_ASCII = frozenset(map(chr, range(33, 127)))
_BARE_WORD = re.compile(r"[^()~'\" \t\n\r]+")
_DIGITS = re.compile(r"[0-9]+")
# A quoted regex ends at its line; a backslash escapes any character but a newline.
_QUOTED = {quote: re.compile(rf"{quote}((?:\\.|[^{quote}\\\n\r])*){quote}") for quote in "'\""}
# pyparsing 3.2's unescaping in quotes: \t \n \f \r are whitespace, \0 is NUL, and any
# other \c is c, so "\d" in quotes is the regex d: write "\\d", or \d without quotes.
# pyparsing meant octal, \xHH and \uHHHH too, but its pattern lost the repeat counts:
# what it decodes is \x, one hex digit and a literal 2 (\x42 is B, \x41 is x41), \u, one
# hex digit and a 4, and an octal digit followed by 3 stays as it is (\03 is 03, not NUL
# and 3). Kept, since that is what mitmproxy 12 does.
_ESCAPE = re.compile(r"\\([tnfr])|\\([0-7]3|0|x[0-9a-fA-F]2|u[0-9a-fA-F]4)|\\(.)")
_WHITESPACE_ESCAPES = {"t": "\t", "n": "\n", "f": "\f", "r": "\r"}


def _unescape_match(match: re.Match[str]) -> str:
    spacing, code, other = match.groups()
    if spacing:
        return _WHITESPACE_ESCAPES[spacing]
    if code == "0":
        return "\0"
    if code:
        return chr(int(code[1:], 16)) if code[0] in "xu" else code
    return other


def _unquote(text: str) -> str:
    return _ESCAPE.sub(_unescape_match, text)


class _NoMatch(Exception):
    """The parser took a wrong turn; it backs up and tries the next alternative."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(problem)
        self.position = position
        self.problem = problem


class _BadRegex(Exception):
    """A regex argument does not compile: the whole expression is refused at once."""


class _Parser:
    """Recursive descent over the text, backing up where pyparsing's alternatives do.

    The grammar, loosest binding first (mitmproxy's):

        expression := alternatives+        juxtaposed terms are and-ed
        alternatives := conjunction ('|' conjunction)*
        conjunction := negation ('&' negation)*
        negation := '!' negation | primary
        primary := '(' alternatives ')' | term
        term := ~flag | ~search regex | ~c digits | regex

    Juxtaposition binds loosest and is not allowed inside parentheses: mitmproxy's quirk,
    so C{~q ~s | ~e} is C{~q & (~s | ~e)} and C{(~q ~s)} is refused. When an operand
    after C{!}, C{&} or C{|} does not parse, the symbol is read again as part of a bare
    regex, so C{~q &} is C{~q & ~u &}.

    @ivar furthest: the failure that got furthest into the text, the one worth reporting.
    """

    def __init__(self, text: str, regex_flags: int) -> None:
        self.text = text
        self.regex_flags = regex_flags
        self.position = 0
        self.furthest = _NoMatch(0, "expected a filter")

    def fail(self, position: int, problem: str) -> NoReturn:
        failure = _NoMatch(position, problem)
        if position >= self.furthest.position:
            self.furthest = failure
        raise failure

    def skip_space(self) -> int:
        while self.position < len(self.text) and self.text[self.position] in _SPACE:
            self.position += 1
        return self.position

    def at(self, symbol: str) -> bool:
        """Whether C{symbol} comes next, after any whitespace."""
        return self.text.startswith(symbol, self.skip_space())

    def source(self, start: int) -> str:
        return self.text[start : self.position].strip(_SPACE)

    def expression(self) -> Filter:
        start = self.skip_space()
        terms = [self.alternatives()]
        while self.skip_space() < len(self.text):
            terms.append(self.alternatives())
        return terms[0] if len(terms) == 1 else And(self.source(start), terms)

    def alternatives(self) -> Filter:
        return self.chain("|", Or, self.conjunction)

    def conjunction(self) -> Filter:
        return self.chain("&", And, self.negation)

    def chain(self, symbol: str, node: type[And] | type[Or], operand: Callable[[], Filter]) -> Filter:
        start = self.skip_space()
        operands = [operand()]
        while True:
            before = self.position
            if not self.at(symbol):
                break
            self.position += 1
            try:
                operands.append(operand())
            except _NoMatch:
                self.position = before
                break
        return operands[0] if len(operands) == 1 else node(self.source(start), operands)

    def negation(self) -> Filter:
        start = self.skip_space()
        if self.at("!"):
            self.position += 1
            try:
                negated = self.negation()
            except _NoMatch:
                self.position = start
            else:
                return Not(self.source(start), negated)
        return self.primary()

    def primary(self) -> Filter:
        if not self.at("("):
            return self.term()
        self.position += 1
        inner = self.alternatives()
        if not self.at(")"):
            self.fail(self.position, "expected ')' (inside parentheses, join terms with & or |)")
        self.position += 1
        return inner

    def term(self) -> Filter:
        start = self.skip_space()
        if not self.at("~"):
            return self.search(_URL, start, "expected a filter")
        end = start + 1
        while end < len(self.text) and self.text[end] in _PRINTABLE_ASCII:
            end += 1
        word = self.text[start:end]
        code = word[1:]
        if code in _FLAGS:
            self.position = end
            return Term(word, code, None, _FLAGS[code].test)
        if code in _SEARCHES:
            self.position = end
            return self.search(_SEARCHES[code], start, f"expected a regex after {word}")
        if code in _NUMBERS:
            self.position = end
            return self.number(_NUMBERS[code], start)
        self.fail(start, _unknown_operator(word))

    def search(self, search: _Search, start: int, missing: str) -> Term:
        expression = self.regex_argument(missing)
        regex = _compile(search, expression, self.regex_flags)
        subjects = search.subjects
        return Term(
            self.source(start),
            search.code,
            expression,
            lambda flow: any(regex.search(subject) for subject in subjects(flow)),
        )

    def regex_argument(self, missing: str) -> str:
        start = self.skip_space()
        quote = self.text[start : start + 1]
        if quote in _QUOTED:
            quoted = _QUOTED[quote].match(self.text, start)
            if quoted is None:
                self.fail(start, f"no closing {quote} on this line")
            self.position = quoted.end()
            return _unquote(quoted.group(1))
        bare = _BARE_WORD.match(self.text, start)
        if bare is None:
            self.fail(start, missing)
        self.position = bare.end()
        return bare.group()

    def number(self, number: _Number, start: int) -> Term:
        digits = _DIGITS.match(self.text, self.skip_space())
        if digits is None:
            self.fail(self.position, f"expected a number after ~{number.code}")
        self.position = digits.end()
        value = int(digits.group())
        return Term(self.source(start), number.code, value, lambda flow: number.test(flow, value))


def _compile(search: _Search, expression: str, flags: int) -> re.Pattern[str] | re.Pattern[bytes]:
    try:
        pattern = expression.encode() if search.binary else expression
        return re.compile(pattern, search.flags | flags)
    except (re.error, UnicodeError) as error:
        problem = error.msg if isinstance(error, re.error) else "it cannot be encoded as UTF-8"
        raise _BadRegex(f"~{search.code} {expression!r} is not a valid regex: {problem}") from None


def _unknown_operator(word: str) -> str:
    """Say what is wrong with C{word}, such as C{~q)}: a known operator glued to more."""
    for code in sorted(_FLAGS.keys() | _SEARCHES.keys() | _NUMBERS.keys(), key=len, reverse=True):
        rest = word[1 + len(code) :]
        if word[1:].startswith(code) and rest and not rest[0].isalpha():
            return f"{word!r} is not an operator: put a space after ~{code}"
    return f"unknown operator {word!r}"


def _regex_flags() -> int:
    """IGNORECASE, unless C{MITMPROXY_CASE_SENSITIVE_FILTERS=1} (read at each L{parse})."""
    return 0 if os.environ.get(CASE_SENSITIVE_VARIABLE) == "1" else re.IGNORECASE


def parse(expression: str) -> Filter:
    """Parse a filter expression into a callable L{Filter}.

    @raise ValueError: for an empty or invalid expression; the message is one line
        naming the expression, the problem and where it is.
    """
    if not expression:
        raise ValueError("Empty filter expression")
    # pyparsing expands tabs (to 8-column stops) before parsing: a tab inside quotes is
    # spaces in mitmproxy, and so here.
    parser = _Parser(expression.expandtabs(), _regex_flags())
    try:
        parsed = parser.expression()
    except _NoMatch:
        failure = parser.furthest
        problem = f"{failure.problem} (at column {failure.position + 1})"
    except _BadRegex as error:
        problem = str(error)
    except RecursionError:
        problem = "nested too deeply"
    else:
        parsed.pattern = expression
        return parsed
    raise ValueError(f"Invalid filter expression: {expression!r}: {problem}")


def match(flt: str | Filter | None, flow: Flow) -> bool:
    """Whether C{flow} matches C{flt}: a filter, an expression to parse, or C{None} (all).

    @raise ValueError: if C{flt} is an invalid expression.
    """
    if isinstance(flt, str):
        flt = parse(flt)
    return flt(flow) if flt else True


match_all: Filter = parse("~all")
"""A filter that matches every flow."""
