# -*- test-case-name: tests.test_blocklist -*-
"""C{block_list}: answer matching requests with a bare status, rules C{SEP filter SEP status}.

In the C{request} hook, as in mitmproxy: the first rule whose filter matches answers
with an empty response of its status (the server is never asked) and marks the flow's
metadata C{blocklisted}. Status 444, nginx's "no response", closes the connection
without any answer instead.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import NamedTuple

from twisted_mitm import ctx, flowfilter
from twisted_mitm.version import TWISTED_MITM
from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.utils.spec import FlowFilter, parse_rules, split_rule

#: The status that closes the connection without a response.
NO_RESPONSE = 444
#: The statuses a rule may give: Python's list, and nginx's 444 and 499 (as mitmproxy's list has).
KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus) | {NO_RESPONSE, 499}


class BlockSpec(NamedTuple):
    """One rule: which flows, what status answers them."""

    matches: FlowFilter
    status_code: int


def parse_block_spec(option: str) -> BlockSpec:
    """Parse a C{block_list} rule: separator, filter, separator, status.

    @raise ValueError: one line: bad syntax or filter, a status that is not an HTTP status.
    """
    pieces = split_rule(option, 3)
    if len(pieces) != 2:
        raise ValueError(f"expected {option[0]}filter{option[0]}status (the first character, {option[0]!r}, separates the parts)")
    expression, status = pieces
    try:
        status_code = int(status)
    except ValueError:
        raise ValueError(f"{status!r} is not an HTTP status code") from None
    if status_code not in KNOWN_STATUSES:
        raise ValueError(f"{status_code} is not an HTTP status code")
    return BlockSpec(flowfilter.parse(expression), status_code)


class BlockList:
    """Answers (or drops) requests that a C{block_list} rule matches."""

    def __init__(self) -> None:
        self.items: list[BlockSpec] = []

    def configure(self, updated: set[str]) -> None:
        if "block_list" in updated:
            self.items = parse_rules("block_list", ctx.options.block_list, parse_block_spec)

    def request(self, flow: HTTPFlow) -> None:
        if not self.items or flow.response is not None or flow.error is not None or not flow.live:
            return
        for spec in self.items:
            if spec.matches(flow):
                flow.metadata["blocklisted"] = True
                if spec.status_code == NO_RESPONSE:
                    flow.kill()
                else:
                    flow.response = Response.make(spec.status_code, headers={"Server": TWISTED_MITM})
                return
