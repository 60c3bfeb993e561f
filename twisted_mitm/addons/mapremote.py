# -*- test-case-name: tests.test_mapremote -*-
"""C{map_remote}: send requests elsewhere, rules C{[SEP filter]SEP url-regex SEP replacement}.

In the C{request} hook, as in mitmproxy: the regex is replaced in the request's
C{pretty_url} (an C{re.sub} template, so C{\\1} works), and when that changed the URL,
the request is re-targeted to the new one (scheme, host, port, path; the Host header
follows). Rules apply in order, each to the URL the previous ones left.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.http import HTTPFlow
from twisted_mitm.utils.spec import FlowFilter, parse_rules, parse_spec

_log = Logger()


class MapRemoteSpec(NamedTuple):
    """One rule: which flows, the URL regex, its replacement template."""

    matches: FlowFilter
    subject: str
    replacement: str


def parse_map_remote_spec(option: str) -> MapRemoteSpec:
    """Parse a C{map_remote} rule.

    @raise ValueError: one line: bad syntax or filter, an invalid regex or template.
    """
    spec = MapRemoteSpec(*parse_spec(option))
    try:
        re.compile(spec.subject).sub(spec.replacement, "")
    except re.error as e:
        raise ValueError(f"invalid regular expression or replacement: {e}") from None
    except IndexError as e:
        raise ValueError(f"invalid replacement {spec.replacement!r}: {e}") from None
    return spec


class MapRemote:
    """Re-targets requests whose URL matches a C{map_remote} rule."""

    def __init__(self) -> None:
        self.replacements: list[MapRemoteSpec] = []

    def configure(self, updated: set[str]) -> None:
        if "map_remote" in updated:
            self.replacements = parse_rules("map_remote", ctx.options.map_remote, parse_map_remote_spec)

    def request(self, flow: HTTPFlow) -> None:
        if not self.replacements or flow.response is not None or flow.error is not None or not flow.live:
            return
        for spec in self.replacements:
            if spec.matches(flow):
                url = flow.request.pretty_url
                new_url = re.sub(spec.subject, spec.replacement, url)
                # Setting the URL also rewrites the Host header: only when it changed.
                if new_url != url:
                    self._retarget(flow, url, new_url)

    @staticmethod
    def _retarget(flow: HTTPFlow, url: str, new_url: str) -> None:
        try:
            flow.request.url = new_url
        except ValueError as e:
            _log.warn("map_remote: {url} became {new_url}, which is not a URL ({error}); left unchanged", url=url, new_url=new_url, error=e)
