# -*- test-case-name: tests.test_modifybody -*-
"""C{modify_body}: regex replacements in bodies, rules C{[SEP filter]SEP regex SEP [@]replacement}.

Buffered bodies are rewritten as mitmproxy does: in the C{request} and C{response}
hooks, on the decoded content (re-encoded afterwards), with C{re.DOTALL}. The
replacement is an C{re.sub} template (C{\\1}, C{\\g<name>}); with C{@path} it is the
file's bytes, read each time and used literally (mitmproxy would expand backslashes in
them too).

Streamed bodies, which mitmproxy leaves alone, are rewritten on the fly: in the headers
hooks, a message that is going to stream gets a C{.stream} transform
(L{BodyRewriter}) running the matching rules chunk by chunk, each with a bounded
look-behind window (L{twisted_mitm.utils.streamsub}), so that a match split across
chunks is still replaced. "Going to stream" means C{.stream} is already set (the body
declared a length above C{stream_large_bodies}), or C{stream_large_bodies} is set and
the body's length is unknown (chunked, or until the connection closes): such a body
could turn to streaming half-way, past the point where the transform could still see
its beginning, so it streams through the rules from its first byte. A streamed body
with a Content-Encoding (gzip...) is not rewritten, and the log says so.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from twisted.logger import Logger

from twisted_mitm import ctx, http1
from twisted_mitm.addons.modifyheaders import ModifySpec, parse_modify_spec
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.http import HTTPFlow, Message, Request, Response
from twisted_mitm.utils.spec import parse_rules
from twisted_mitm.utils.streamsub import Replace, StreamSubstitution, literal_replacement, template_replacement

_log = Logger()


class BodyRule(NamedTuple):
    """A C{modify_body} rule with its regex compiled."""

    spec: ModifySpec
    pattern: re.Pattern[bytes]

    def replacement(self) -> Replace:
        """What replaces each match: the template, or the file's bytes as they are now.

        @raise OSError: the C{@path} file cannot be read.
        """
        if self.spec.from_file:
            return literal_replacement(self.spec.read_replacement())
        return template_replacement(self.pattern, self.spec.read_replacement())


def parse_body_rule(option: str) -> BodyRule:
    """Parse a C{modify_body} rule; a template that refers to a missing group is refused now.

    @raise ValueError: one line saying what is wrong.
    """
    spec = parse_modify_spec(option, True)
    rule = BodyRule(spec, re.compile(spec.subject, re.DOTALL))
    try:
        rule.replacement()
    except (re.error, IndexError) as e:
        raise ValueError(f"invalid replacement {spec.replacement_str!r}: {e}") from None
    return rule


class BodyRewriter:
    """The C{.stream} transform of a streamed body: the matching rules, one after the other.

    A plain function in the sense of SPEC §4: called with each chunk, and with C{b""}
    at the end, when everything held back comes out.

    @ivar substitutions: one per rule, in the order of the rules.
    """

    def __init__(self, substitutions: list[StreamSubstitution]) -> None:
        self.substitutions = substitutions

    def __call__(self, chunk: bytes) -> bytes:
        final = not chunk
        for substitution in self.substitutions:
            chunk = substitution.feed(chunk, final)
        return chunk


def _length_unknown(flow: HTTPFlow, message: Message) -> bool:
    """Whether C{message}'s body is delimited by chunks or by the connection's end."""
    fields = message.headers.fields
    try:
        if isinstance(message, Request):
            framing = http1.request_framing(http1.RequestHead(message.data.method, b"", message.data.http_version, fields))
        else:
            assert isinstance(message, Response)
            head = http1.ResponseHead(message.data.http_version, message.status_code, message.data.reason, fields)
            framing = http1.response_framing(head, flow.request.data.method)
    except ProtocolError:
        return False
    return framing.kind in (http1.FramingKind.CHUNKED, http1.FramingKind.UNTIL_CLOSE)


def _content_coding(message: Message) -> str:
    """The Content-Encoding of C{message}, C{""} for none or identity."""
    coding = message.headers.get("content-encoding", "").strip().lower()
    return "" if coding == "identity" else coding


class ModifyBody:
    """Applies the C{modify_body} rules to buffered bodies, and to streamed ones on the fly."""

    def __init__(self) -> None:
        self.rules: list[BodyRule] = []

    def configure(self, updated: set[str]) -> None:
        if "modify_body" in updated:
            self.rules = parse_rules("modify_body", ctx.options.modify_body, parse_body_rule)

    # Streamed bodies: the transform goes on in the headers hooks.

    def requestheaders(self, flow: HTTPFlow) -> None:
        if not self.rules or flow.response is not None or flow.error is not None or not flow.live:
            return
        self._rewrite_stream(flow, flow.request)

    def responseheaders(self, flow: HTTPFlow) -> None:
        if not self.rules or flow.response is None or flow.error is not None or not flow.live:
            return
        self._rewrite_stream(flow, flow.response)

    def _rewrite_stream(self, flow: HTTPFlow, message: Message) -> None:
        if not self.rules or not self._will_stream(flow, message) or callable(message.stream):
            return
        if _content_coding(message):
            return
        substitutions = []
        for rule in self.rules:
            if rule.spec.matches(flow):
                replacement = self._replacement(rule)
                if replacement is not None:
                    substitutions.append(StreamSubstitution(rule.pattern, replacement))
        if substitutions:
            message.stream = BodyRewriter(substitutions)

    def _will_stream(self, flow: HTTPFlow, message: Message) -> bool:
        if message.stream:
            return True
        return bool(ctx.options.stream_large_bodies) and _length_unknown(flow, message)

    # Buffered bodies: rewritten in the body hooks, as mitmproxy does.

    def request(self, flow: HTTPFlow) -> None:
        if not self.rules or flow.response is not None or flow.error is not None or not flow.live:
            return
        self._rewrite_content(flow, flow.request)

    def response(self, flow: HTTPFlow) -> None:
        if not self.rules or flow.response is None or flow.error is not None or not flow.live:
            return
        self._rewrite_content(flow, flow.response)

    def _rewrite_content(self, flow: HTTPFlow, message: Message) -> None:
        matching = [rule for rule in self.rules if rule.spec.matches(flow)]
        if not matching:
            return
        if message.stream:
            self._report_unrewritten(flow, message)
            return
        try:
            content = message.content or b""
        except ValueError as e:
            _log.warn("modify_body: {url}: the body cannot be decoded ({error}); not modified", url=flow.request.pretty_url, error=e)
            return
        changed = False
        for rule in matching:
            replacement = self._replacement(rule)
            if replacement is not None:
                content, count = rule.pattern.subn(replacement, content)
                changed = changed or count > 0
        if changed:
            message.content = content

    def _report_unrewritten(self, flow: HTTPFlow, message: Message) -> None:
        """Say why a streamed body the rules match went through unchanged."""
        if isinstance(message.stream, BodyRewriter):
            return
        kind = type(message).__name__.lower()
        coding = _content_coding(message)
        if coding:
            reason = f"it is {coding}-encoded (anticomp asks servers not to compress)"
        elif isinstance(message, Response) and message.body_file is not None:
            reason = f"it was read from {message.body_file}"
        else:
            reason = "another addon chose to stream it"
        _log.warn("modify_body: {url}: the streamed {kind} body was not modified: {reason}", url=flow.request.pretty_url, kind=kind, reason=reason)

    @staticmethod
    def _replacement(rule: BodyRule) -> Replace | None:
        try:
            return rule.replacement()
        except OSError as e:
            _log.warn("modify_body: cannot read {path}: {error}", path=rule.spec.replacement_str[1:], error=e.strerror or e)
            return None
