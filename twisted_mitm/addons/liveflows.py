# -*- test-case-name: tests.test_command -*-
"""The flows the proxy is carrying now, for commands given a flow specification.

mitmproxy resolves C{@all}, C{@marked} or a filter against the flows its view keeps. The
proxy keeps no flows once they are over (that is what keeps its memory flat), so the same
specifications select among the flows that are still live: being exchanged, or held by
an intercept. The command keeps mitmproxy's name, C{view.flows.resolve}.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence

from twisted_mitm import command
from twisted_mitm.exceptions import CommandError
from twisted_mitm.flow import Flow

from twisted_mitm import flowfilter

_FLOW_IDS = re.compile(r"@[0-9a-f\-,]{36,}")
_WITHOUT_VIEW = ("@focus", "@shown", "@hidden")


class LiveFlows:
    """Knows every HTTP and TCP flow from its first hook until it is freed."""

    def __init__(self) -> None:
        self._flows: weakref.WeakValueDictionary[str, Flow] = weakref.WeakValueDictionary()

    def requestheaders(self, flow: Flow) -> None:
        self._flows[flow.id] = flow

    def tcp_start(self, flow: Flow) -> None:
        self._flows[flow.id] = flow

    def live(self) -> list[Flow]:
        """The flows still running, oldest first."""
        return [flow for flow in list(self._flows.values()) if flow.live]

    @command.command("view.flows.resolve")
    def resolve(self, flow_spec: str) -> Sequence[Flow]:
        """
        The live flows a specification selects: C{@all}, C{@marked}, C{@unmarked},
        C{@ID,ID...}, or a filter expression.
        """
        flows = self.live()
        if flow_spec == "@all":
            return flows
        if flow_spec == "@marked":
            return [flow for flow in flows if flow.marked]
        if flow_spec == "@unmarked":
            return [flow for flow in flows if not flow.marked]
        if flow_spec in _WITHOUT_VIEW:
            raise CommandError(f"{flow_spec} needs mitmproxy's flow view, which twisted_mitm has not: use @all, @marked, @unmarked or a filter")
        if _FLOW_IDS.fullmatch(flow_spec):
            ids = set(flow_spec[1:].split(","))
            return [flow for flow in flows if flow.id in ids]
        matches = _parse_filter(flow_spec)
        return [flow for flow in flows if matches(flow)]


def _parse_filter(expression: str) -> flowfilter.Filter:
    try:
        return flowfilter.parse(expression)
    except ValueError as error:
        raise CommandError(str(error)) from None
