# -*- test-case-name: tests.test_flowfilter -*-
"""Tests for L{twisted_mitm.flowfilter}: mitmproxy 12's filter grammar and matching rules.

Most tests are tables of C{(expression, flow, expected)}; each table is checked whole and
reports every row that disagrees.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.flows import error_flow, request_flow, response_flow, tcp_error_flow, tcp_flow, websocket_flow
from twisted_mitm import flowfilter
from twisted_mitm.flowfilter import And, Filter, Not, Or, Term
from twisted_mitm.http import HTTPFlow


def tree(flt: Filter) -> Any:
    """A parsed filter as nested tuples: C{("and", [...])}, C{("not", ...)}, C{(code, argument)}."""
    if isinstance(flt, (And, Or)):
        return (type(flt).__name__.lower(), [tree(each) for each in flt.filters])
    if isinstance(flt, Not):
        return ("not", tree(flt.filter))
    assert isinstance(flt, Term)
    return (flt.code, flt.argument)


class _Tables(SynchronousTestCase):
    """Checks a table of expressions against flows, reporting every disagreeing row."""

    def assert_matches(self, rows: list[tuple[str, Callable[[], Any], bool]]) -> None:
        wrong = [
            (expression, make.__name__, expected)
            for expression, make, expected in rows
            if flowfilter.parse(expression)(make()) is not expected
        ]
        self.assertEqual(wrong, [])


class ParsingTests(SynchronousTestCase):
    """What expressions mean: precedence, juxtaposition, quoting, bare regexes."""

    def assert_trees(self, rows: list[tuple[str, Any]]) -> None:
        wrong = [(expression, tree(flowfilter.parse(expression)), expected) for expression, expected in rows if tree(flowfilter.parse(expression)) != expected]
        self.assertEqual(wrong, [])

    def test_operators(self) -> None:
        """Each kind of operator: no argument, a regex, a number."""
        self.assert_trees([
            ("~q", ("q", None)),
            ("~replayq", ("replayq", None)),
            ("~marked", ("marked", None)),
            ("~m foobar", ("m", "foobar")),
            ("~marker X", ("marker", "X")),
            ("~c 10", ("c", 10)),
            ("~c 007", ("c", 7)),
            ("~s шгн", ("and", [("s", None), ("u", "шгн")])),
        ])

    def test_combinators(self) -> None:
        """! binds tightest, then &, then |; the same operator flattens into one list."""
        self.assert_trees([
            ("~q & ~s & ~e", ("and", [("q", None), ("s", None), ("e", None)])),
            ("~q | ~s | ~e", ("or", [("q", None), ("s", None), ("e", None)])),
            ("~q | ~s & ~e", ("or", [("q", None), ("and", [("s", None), ("e", None)])])),
            ("!~q & ~s", ("and", [("not", ("q", None)), ("s", None)])),
            ("! ~c 200", ("not", ("c", 200))),
            ("!!~q", ("not", ("not", ("q", None)))),
            ("!(~u test & ~h bar)", ("not", ("and", [("u", "test"), ("h", "bar")]))),
            ("(~c 201 | ~h nohead) & ~s", ("and", [("or", [("c", 201), ("h", "nohead")]), ("s", None)])),
            ("~s |~q", ("or", [("s", None), ("q", None)])),
        ])

    def test_juxtaposition(self) -> None:
        """Terms side by side are and-ed, more loosely than | (mitmproxy's precedence)."""
        self.assert_trees([
            ("~q ~c 10", ("and", [("q", None), ("c", 10)])),
            ("foobar ~h rex", ("and", [("u", "foobar"), ("h", "rex")])),
            ("~q ~s | ~e", ("and", [("q", None), ("or", [("s", None), ("e", None)])])),
            ("~q | ~s ~e", ("and", [("or", [("q", None), ("s", None)]), ("e", None)])),
            ("!~c 201 !~c 202", ("and", [("not", ("c", 201)), ("not", ("c", 202))])),
            ("~c 2x", ("and", [("c", 2), ("u", "x")])),
        ])

    def test_bare_regex_is_url(self) -> None:
        """A regex without operator is ~u; & | ! inside a word belong to the regex."""
        self.assert_trees([
            ("foobar", ("u", "foobar")),
            ("google\\.com", ("u", "google\\.com")),
            ("~u x|y", ("u", "x|y")),
            ("a&b", ("u", "a&b")),
            ("~u !x", ("u", "!x")),
            ("!", ("u", "!")),
            ("~q &", ("and", [("q", None), ("u", "&")])),
            ("| ~q", ("and", [("u", "|"), ("q", None)])),
        ])

    def test_quoting(self) -> None:
        """Quotes hold spaces and operators; a backslash escapes the next character."""
        self.assert_trees([
            ("~u 'foo ~u bar' ~u voing", ("and", [("u", "foo ~u bar"), ("u", "voing")])),
            ("~hq 'header: qvalue'", ("hq", "header: qvalue")),
            (r"~u 'foobar\"\''", ("u", "foobar\"'")),
            (r'~u "foo \'bar"', ("u", "foo 'bar")),
            ("~u ''", ("u", "")),
            ('!(~q & ~t "text/html")', ("not", ("and", [("q", None), ("t", "text/html")]))),
            # Without quotes a backslash stays; in quotes it escapes, so "\d" is d.
            (r"~b \d+", ("b", r"\d+")),
            (r"~b '\d+'", ("b", "d+")),
            (r"~b '\\d+'", ("b", r"\d+")),
            (r"~b 'a\tb\nc\0'", ("b", "a\tb\nc\0")),
            # pyparsing's slip, kept: \x, a hex digit and 2 is a character; \x41 is x41.
            (r"~b '\x42\x41\03'", ("b", "Bx4103")),
            # Tabs are expanded to 8-column stops before parsing, as pyparsing does.
            ("~b '\ta'", ("b", "    a")),
        ])

    def test_pattern_and_repr(self) -> None:
        """The whole filter keeps the text it was parsed from; each part its own slice."""
        flt = flowfilter.parse(" ~q  & ~u 'a b' ")
        self.assertEqual(flt.pattern, " ~q  & ~u 'a b' ")
        assert isinstance(flt, And)
        self.assertEqual([part.pattern for part in flt.filters], ["~q", "~u 'a b'"])
        self.assertEqual(repr(flt.filters[1]), "<Term \"~u 'a b'\">")

    def test_help(self) -> None:
        """The help table lists every operator, sorted, then the four combinators."""
        operators = [syntax for syntax, _ in flowfilter.help[:-4]]
        self.assertEqual(operators, sorted(operators))
        self.assertIn("~c int", operators)
        self.assertIn("~websocket", operators)
        self.assertIn("~b regex", operators)
        self.assertEqual([syntax for syntax, _ in flowfilter.help[-4:]], ["!", "&", "|", "(...)"])
        self.assertTrue(all(meaning for _, meaning in flowfilter.help))


class BadSyntaxTests(SynchronousTestCase):
    """A bad expression raises ValueError with one line naming it and the problem."""

    def test_messages(self) -> None:
        """Each mistake is named, with where it is."""
        rows = [
            ("", "Empty filter expression"),
            ("  ", "'  ': expected a filter (at column 3)"),
            ("~b", "'~b': expected a regex after ~b (at column 3)"),
            ("~c x", "expected a number after ~c"),
            ("~c -1", "expected a number after ~c"),
            ("~z", "unknown operator '~z'"),
            ("~qq", "unknown operator '~qq'"),
            ("~h [", "~h '[' is not a valid regex: unterminated character set"),
            ("[foobar", "~u '[foobar' is not a valid regex"),
            ("~u 'abc", "no closing ' on this line (at column 4)"),
            ("(~u x", "expected ')'"),
            ("~u a~b", "expected a regex after ~b"),
            ("~u (a)", "expected a regex after ~u"),
            ("()", "(at column 2)"),
            ("(" * 2000 + "~q" + ")" * 2000, "nested too deeply"),
        ]
        wrong = []
        for expression, expected in rows:
            try:
                flowfilter.parse(expression)
            except ValueError as error:
                message = str(error)
                if expected not in message or "\n" in message:
                    wrong.append((expression, message))
            else:
                wrong.append((expression, "parsed"))
        self.assertEqual(wrong, [])

    def test_operator_needs_space(self) -> None:
        """An operator glued to ( ) & | is refused, as mitmproxy does, with the fix in the message."""
        rows = {
            "(~q)": "'~q)' is not an operator: put a space after ~q (at column 2)",
            "~q&~s": "put a space after ~q",
            "~s| ~q": "put a space after ~s",
            "~c200": "put a space after ~c",
            "~replayq)": "put a space after ~replayq",
        }
        for expression, expected in rows.items():
            with self.assertRaises(ValueError) as caught:
                flowfilter.parse(expression)
            self.assertIn(expected, str(caught.exception), expression)
        self.assertEqual(tree(flowfilter.parse("(~q )")), ("q", None))

    def test_juxtaposition_not_inside_parentheses(self) -> None:
        """Inside parentheses terms must be joined with & or |, as in mitmproxy."""
        with self.assertRaises(ValueError) as caught:
            flowfilter.parse("(~q ~s)")
        self.assertIn("inside parentheses, join terms with & or |", str(caught.exception))


def marked_flow() -> HTTPFlow:
    """L{request_flow} marked X, with a comment, metadata, and its request replayed."""
    flow = request_flow()
    flow.marked = "X"
    flow.comment = "a\nnote"
    flow.is_replay = "request"
    flow.metadata.update(a=1, b="string", c={"key": "value"})
    return flow


def replayed_response_flow() -> HTTPFlow:
    """L{response_flow} whose response was replayed."""
    flow = response_flow()
    flow.is_replay = "response"
    return flow


def typed_flow() -> HTTPFlow:
    """L{response_flow} with a JSON request and a JavaScript response (odd case)."""
    flow = response_flow()
    flow.request.headers["content-type"] = "text/json"
    flow.response.headers["Content-Type"] = "application/JAVASCRIPT"
    return flow


def image_flow() -> HTTPFlow:
    """L{response_flow} answering with a PNG image."""
    flow = response_flow()
    flow.response.headers["Content-Type"] = "image/png"
    return flow


def host_header_flow() -> HTTPFlow:
    """L{request_flow} whose Host header names another host."""
    flow = request_flow()
    flow.request.headers["Host"] = "other.example"
    return flow


def text_flow() -> HTTPFlow:
    """L{response_flow} with non-ASCII text in its path and response body."""
    flow = response_flow()
    flow.request.path = "/caf\u00e9"
    flow.response.set_content("caf\u00e9 \u6d4b\u8bd5".encode())
    return flow


def binary_flow() -> HTTPFlow:
    """L{response_flow} with a binary, gzip-encoded response body."""
    flow = response_flow()
    flow.response.headers["Content-Encoding"] = "gzip"
    flow.response.set_content(b"\x00\xff compressed")
    return flow


def streamed_flow() -> HTTPFlow:
    """L{response_flow} whose response body was streamed, so not recorded."""
    flow = response_flow()
    flow.response.raw_content = None
    return flow


def serverless_flow() -> HTTPFlow:
    """L{request_flow} without a server address."""
    flow = request_flow()
    flow.server_conn.address = None
    return flow


Rows = list[tuple[str, Callable[[], Any], bool]]

FLOW_KINDS: Rows = [
    ("~http", request_flow, True),
    ("~tcp", request_flow, False),
    ("~websocket", response_flow, False),
    ("~udp", request_flow, False),
    ("~dns", request_flow, False),
    ("~all", request_flow, True),
    ("~q", request_flow, True),
    ("~q", response_flow, False),
    ("~s", request_flow, False),
    ("~s", response_flow, True),
    ("~e", error_flow, True),
    ("~e", response_flow, False),
    ("~c 200", response_flow, True),
    ("~c 201", response_flow, False),
    ("~c 200", request_flow, False),
]

HEADERS: Rows = [
    ("~h nonexistent", request_flow, False),
    ("~h qvalue", request_flow, True),
    ("~h 'header: qvalue'", request_flow, True),
    ("~h 'header: qvalue'", response_flow, True),
    ("~h 'header-response: svalue'", response_flow, True),
    ("~h '^Header-Response:'", response_flow, True),
    ("~hq 'header: qvalue'", response_flow, True),
    ("~hq 'header-response: svalue'", response_flow, False),
    ("~hs 'header-response: svalue'", response_flow, True),
    ("~hs 'header: qvalue'", response_flow, False),
    ("~hs 'header: qvalue'", request_flow, False),
    # Lines end in CRLF, so $ does not follow the value: as in mitmproxy.
    ("~h 'qvalue$'", request_flow, False),
]

BODIES: Rows = [
    ("~b nonexistent", request_flow, False),
    ("~b content", request_flow, True),
    ("~b message", response_flow, True),
    ("~b MESSAGE", response_flow, True),
    ("~b 'con.ent'", request_flow, True),
    ("~bq content", response_flow, True),
    ("~bq message", response_flow, False),
    ("~bs message", response_flow, True),
    ("~bs content", response_flow, False),
    ("~bs message", request_flow, False),
    # Decoded before the search; bytes patterns; a body never recorded matches nothing.
    ("~bs compressed", binary_flow, True),
    (r"~bs '\\x00\\xff'", binary_flow, True),
    ("~bs .", streamed_flow, False),
    ("~bq content", streamed_flow, True),
    # Bodies are bytes: the UTF-8 pattern matches, but only ASCII letters fold case.
    ("~bs caf\u00e9", text_flow, True),
    ("~bs \u6d4b\u8bd5", text_flow, True),
    ("~bs CAF\u00c9", text_flow, False),
    ("~u CAF\u00c9", text_flow, True),
]

REQUEST_LINE: Rows = [
    ("~m post", request_flow, True),
    ("~m POST", request_flow, True),
    ("~m get", request_flow, False),
    ("~d address", request_flow, True),
    ("~d ADDRESS", request_flow, True),
    ("~d none", request_flow, False),
    ("~d other", host_header_flow, True),
    ("~d address", host_header_flow, True),
    ("~u address", request_flow, True),
    ("~u ADDRESS", request_flow, True),
    ("~u address:22/path", request_flow, True),
    ("~u moo/path", request_flow, False),
    ("~u other.example/path", host_header_flow, True),
    ("address:22", request_flow, True),
]

CONTENT_TYPES: Rows = [
    ("~t content", request_flow, False),
    ("~t json", typed_flow, True),
    ("~tq json", typed_flow, True),
    ("~ts json", typed_flow, False),
    ("~ts javascript", typed_flow, True),
    ("~a", response_flow, False),
    ("~a", image_flow, True),
    # The asset types are matched case-sensitively, as in mitmproxy.
    ("~a", typed_flow, False),
]

ADDRESSES: Rows = [
    ("~src 127.0.0.1", request_flow, True),
    ("~src :22", request_flow, True),
    ("~src :99", request_flow, False),
    ("~src 127.0.0.1:22", request_flow, True),
    ("~src foobar", request_flow, False),
    ("~dst address", request_flow, True),
    ("~dst address:22", request_flow, True),
    ("~dst :99", request_flow, False),
    ("~dst .", serverless_flow, False),
]

USER_MARKS: Rows = [
    (expression, request_flow, False)
    for expression in ("~marked", "~marker .", "~comment .", "~replay", "~replayq", "~replays", "~meta .")
] + [
    ("~marked", marked_flow, True),
    ("~marker X", marked_flow, True),
    ("~marker Y", marked_flow, False),
    ("~comment '^note'", marked_flow, True),
    ("~replay", marked_flow, True),
    ("~replayq", marked_flow, True),
    ("~replays", marked_flow, False),
    ("~replays", replayed_response_flow, True),
    ("~meta 'b: string'", marked_flow, True),
    ("~meta '^b: string$'", marked_flow, True),
    ("~meta \"'key': 'value'\"", marked_flow, True),
]

COMBINATORS: Rows = [
    ("~c 200 & ~h head", response_flow, True),
    ("~c 200 & ~h nohead", response_flow, False),
    ("(~c 200 & ~h head) & ~b content", response_flow, True),
    ("(~c 200 & ~h head) & ~b nonexistent", response_flow, False),
    ("~c 200 | ~h nohead", response_flow, True),
    ("~c 201 | ~h nohead", response_flow, False),
    ("(~c 201 | ~h nohead) | ~s", response_flow, True),
    ("! ~c 200", response_flow, False),
    ("! ~c 201", response_flow, True),
    ("!~c 201 !~c 202", response_flow, True),
    ("!~c 201 !~c 200", response_flow, False),
]

WEBSOCKET: Rows = [
    ("~websocket", websocket_flow, True),
    ("~http", websocket_flow, True),
    ("~tcp", websocket_flow, False),
    ("~d example.com", websocket_flow, True),
    ("~u example.com/ws", websocket_flow, True),
    ("~b hello", websocket_flow, True),
    ("~b me", websocket_flow, True),
    ("~bq hello", websocket_flow, True),
    ("~bq me", websocket_flow, False),
    ("~bs me", websocket_flow, True),
    ("~bs hello", websocket_flow, False),
    ("~c 101", websocket_flow, True),
]

TCP: Rows = [
    ("~tcp", tcp_flow, True),
    ("~http", tcp_flow, False),
    ("~websocket", tcp_flow, False),
    ("~all", tcp_flow, True),
    ("~b hello", tcp_flow, True),
    ("~b me", tcp_flow, True),
    ("~b nonexistent", tcp_flow, False),
    ("~bq hello", tcp_flow, True),
    ("~bq me", tcp_flow, False),
    ("~bs me", tcp_flow, True),
    ("~bs hello", tcp_flow, False),
    ("~src 127.0.0.1:22", tcp_flow, True),
    ("~dst address:22", tcp_flow, True),
    ("~e", tcp_flow, False),
    ("~e", tcp_error_flow, True),
    ("(~src :22 & ~dst :22) & ~b hello", tcp_flow, True),
    ("~src :99 | ~dst :99", tcp_flow, False),
] + [
    (expression, tcp_flow, False)
    for expression in ("~q", "~s", "~a", "~c 200", "~h .", "~hq .", "~hs .", "~t .", "~tq .", "~ts .", "~d .", "~m .", "~u .", "x")
]

TABLES = [FLOW_KINDS, HEADERS, BODIES, REQUEST_LINE, CONTENT_TYPES, ADDRESSES, USER_MARKS, COMBINATORS, WEBSOCKET, TCP]


class MatchingTests(_Tables):
    """Every operator on HTTP, WebSocket and TCP flows (mitmproxy's own cases, and more)."""

    def test_flow_kinds(self) -> None:
        """~http ~tcp ~websocket ~q ~s ~e ~c ~all tell flows apart by kind and state."""
        self.assert_matches(FLOW_KINDS)

    def test_headers(self) -> None:
        """~h ~hq ~hs search 'name: value' lines, case-insensitively, with ^ at each line."""
        self.assert_matches(HEADERS)

    def test_bodies(self) -> None:
        """~b ~bq ~bs search decoded bodies as bytes."""
        self.assert_matches(BODIES)

    def test_request_line(self) -> None:
        """~m ~d ~u and bare regexes look at the method, hosts and URL."""
        self.assert_matches(REQUEST_LINE)

    def test_content_types(self) -> None:
        """~t looks at both messages' Content-Type, ~tq ~ts at one, ~a at the response's."""
        self.assert_matches(CONTENT_TYPES)

    def test_addresses(self) -> None:
        """~src and ~dst search 'host:port' of the client and the server."""
        self.assert_matches(ADDRESSES)

    def test_user_marks(self) -> None:
        """~marked ~marker ~comment ~meta ~replay ~replayq ~replays read what users and addons set."""
        self.assert_matches(USER_MARKS)

    def test_combinators(self) -> None:
        """& | ! and grouping combine matches."""
        self.assert_matches(COMBINATORS)

    def test_websocket(self) -> None:
        """A WebSocket flow is HTTP too; its messages count as bodies, by direction."""
        self.assert_matches(WEBSOCKET)

    def test_tcp(self) -> None:
        """A TCP flow has messages and addresses, and none of the HTTP parts."""
        self.assert_matches(TCP)

    def test_every_operator_is_tried(self) -> None:
        """The tables use every operator of the help table, each both matching and not."""
        outcomes: dict[str, set[bool]] = {}
        for rows in TABLES:
            for expression, _, expected in rows:
                for word in expression.replace("(", " ").replace("!", " ").split():
                    outcomes.setdefault(word, set()).add(expected)
        codes = [syntax.split()[0] for syntax, _ in flowfilter.help[:-4]]
        wanted = {code: {True, False} for code in codes} | {"~udp": {False}, "~dns": {False}, "~all": {True}}
        self.assertEqual({code: outcomes.get(code) for code in codes if not wanted[code] <= outcomes.get(code, set())}, {})


class CaseSensitivityTests(SynchronousTestCase):
    """Regexes ignore case unless MITMPROXY_CASE_SENSITIVE_FILTERS=1 when they are parsed."""

    def setUp(self) -> None:
        previous = os.environ.pop(flowfilter.CASE_SENSITIVE_VARIABLE, None)
        if previous is not None:
            self.addCleanup(os.environ.__setitem__, flowfilter.CASE_SENSITIVE_VARIABLE, previous)

    def test_variable(self) -> None:
        """With the variable set to 1, ~u ~m ~h and ~b match case-sensitively."""
        flow = response_flow()
        expressions = ("~u ADDRESS", "~m post", "~h HEADER", "~b MESSAGE")
        before = [flowfilter.parse(e) for e in expressions]
        os.environ[flowfilter.CASE_SENSITIVE_VARIABLE] = "1"
        self.addCleanup(os.environ.pop, flowfilter.CASE_SENSITIVE_VARIABLE)
        after = [flowfilter.parse(e) for e in expressions]
        self.assertEqual([flt(flow) for flt in before], [True] * 4)
        self.assertEqual([flt(flow) for flt in after], [False] * 4)
        self.assertTrue(flowfilter.match("~m POST", flow))


class MatchTests(SynchronousTestCase):
    """L{flowfilter.match} takes an expression, a parsed filter or None."""

    def test_match(self) -> None:
        """A text is parsed, a filter called, None matches everything."""
        flow = response_flow()
        self.assertTrue(flowfilter.match("~s", flow))
        self.assertFalse(flowfilter.match(flowfilter.parse("~q"), flow))
        self.assertTrue(flowfilter.match(None, flow))
        self.assertTrue(flowfilter.match_all(tcp_flow()))
        with self.assertRaises(ValueError):
            flowfilter.match("[foobar", flow)
