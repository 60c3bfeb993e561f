# -*- test-case-name: tests.test_modifyheaders -*-
"""C{modify_headers}: set or remove headers, rules C{[SEP filter]SEP name SEP [@]value}.

As in mitmproxy, the rules apply to the request in C{requestheaders} and to the response
in C{responseheaders}, so they hold for streamed messages too. For each message, every
rule's filter is checked first; then every matching rule's header is removed, and the
matching rules with a non-empty value add theirs (so several rules can give one name
several values). C{@path} reads the value from a file each time it applies.

The rule parser L{parse_modify_spec} is shared with C{modify_body}.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.http import Headers, HTTPFlow
from twisted_mitm.utils import strutils
from twisted_mitm.utils.spec import FlowFilter, parse_rules, parse_spec

_log = Logger()


class ModifySpec(NamedTuple):
    """One rule: which flows, what to look for (a header name or a regex), what to put instead."""

    matches: FlowFilter
    subject: bytes
    replacement_str: str

    @property
    def from_file(self) -> bool:
        """Whether the replacement is read from a file (C{@path})."""
        return self.replacement_str.startswith("@")

    def read_replacement(self) -> bytes:
        """The replacement: the file's bytes for C{@path}, else the text with its escapes
        (C{\\n}, C{\\x00}...) turned into bytes.

        @raise OSError: the file cannot be read.
        """
        if self.from_file:
            return Path(self.replacement_str[1:]).expanduser().read_bytes()
        return strutils.escaped_str_to_bytes(self.replacement_str)


def parse_modify_spec(option: str, subject_is_regex: bool) -> ModifySpec:
    """Parse a C{modify_headers} or C{modify_body} rule and check what can be checked now.

    @raise ValueError: one line: bad syntax or filter, an invalid regex, an unreadable file.
    """
    matches, subject_str, replacement = parse_spec(option)
    try:
        subject = strutils.escaped_str_to_bytes(subject_str)
    except ValueError as e:
        raise ValueError(f"invalid escape in {subject_str!r}: {e}") from None
    if subject_is_regex:
        try:
            re.compile(subject)
        except re.error as e:
            raise ValueError(f"invalid regular expression {subject_str!r}: {e}") from None
    spec = ModifySpec(matches, subject, replacement)
    try:
        spec.read_replacement()
    except OSError as e:
        raise ValueError(f"cannot read {replacement[1:]!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise ValueError(f"invalid escape in {replacement!r}: {e}") from None
    return spec


class ModifyHeaders:
    """Applies the C{modify_headers} rules to every request and response head."""

    def __init__(self) -> None:
        self.replacements: list[ModifySpec] = []

    def configure(self, updated: set[str]) -> None:
        if "modify_headers" in updated:
            self.replacements = parse_rules("modify_headers", ctx.options.modify_headers, lambda rule: parse_modify_spec(rule, False))

    def requestheaders(self, flow: HTTPFlow) -> None:
        if not self.replacements or flow.response is not None or flow.error is not None or not flow.live:
            return
        self.run(flow, flow.request.headers)

    def responseheaders(self, flow: HTTPFlow) -> None:
        if not self.replacements or flow.response is None or flow.error is not None or not flow.live:
            return
        self.run(flow, flow.response.headers)

    def run(self, flow: HTTPFlow, headers: Headers) -> None:
        """Apply the matching rules to C{headers}; the filters all see the flow as it came."""
        matching = [spec for spec in self.replacements if spec.matches(flow)]
        for spec in matching:
            headers.pop(spec.subject, None)
        for spec in matching:
            try:
                value = spec.read_replacement()
            except OSError as e:
                _log.warn("modify_headers: cannot read {path}: {error}", path=spec.replacement_str[1:], error=e.strerror or e)
                continue
            if value:
                headers.add(spec.subject, value)
