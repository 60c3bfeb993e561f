# -*- test-case-name: tests.test_serverplayback -*-
"""C{server_replay} (C{-S}): answer requests with recorded responses, as mitmproxy 12 does.

Recorded flows are filed under a key made from their request (L{MatchRules.key}); a live
request with the same key is answered, in the C{request} hook, with a copy of the first
recorded response under that key (C{flow.is_replay == "response"}), and the server is
never contacted. Each recorded response answers once, in recorded order, unless
C{server_replay_reuse} is set. A request with no match is forwarded, killed, or answered
with an empty status response, as C{server_replay_extra} says.

The key, like mitmproxy's: scheme, method, path, the body (or, with
C{server_replay_ignore_payload_params}, the form fields not ignored), host and port
(unless ignored), the query parameters not ignored, and the values of
C{server_replay_use_headers}.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.addonmanager import Loader
from twisted_mitm.exceptions import CommandError, FlowReadException, OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.http import HTTPFlow, Request, Response
from twisted_mitm.io import read_flows_from_paths

log = Logger()

#: The options the key depends on: changing one files the recorded flows anew.
MATCH_OPTIONS = frozenset(
    {
        "server_replay_ignore_content",
        "server_replay_ignore_host",
        "server_replay_ignore_params",
        "server_replay_ignore_payload_params",
        "server_replay_ignore_port",
        "server_replay_use_headers",
    }
)


@dataclass(frozen=True)
class MatchRules:
    """What of a request decides which recorded response answers it."""

    ignore_content: bool = False
    ignore_host: bool = False
    ignore_params: Sequence[str] = ()
    ignore_payload_params: Sequence[str] = ()
    ignore_port: bool = False
    use_headers: Sequence[str] = ()

    @classmethod
    def from_options(cls, options: Any) -> MatchRules:
        """The rules the C{server_replay_*} options set."""
        return cls(
            options.server_replay_ignore_content,
            options.server_replay_ignore_host,
            tuple(options.server_replay_ignore_params),
            tuple(options.server_replay_ignore_payload_params),
            options.server_replay_ignore_port,
            tuple(options.server_replay_use_headers),
        )

    def key(self, request: Request) -> Hashable:
        """The key C{request} is filed and looked up under."""
        query = urllib.parse.urlparse(request.url).query
        key: list[Any] = [request.scheme, request.method, request.path.split("?", 1)[0]]
        if not self.ignore_content:
            key.append(self._body_key(request))
        if not self.ignore_host:
            key.append(request.pretty_host)
        if not self.ignore_port:
            key.append(request.port)
        key += (
            pair for pair in urllib.parse.parse_qsl(query, keep_blank_values=True) if pair[0] not in self.ignore_params
        )
        key += ((name, request.headers.get(name)) for name in self.use_headers)
        return tuple(key)

    def _body_key(self, request: Request) -> Hashable:
        if self.ignore_payload_params:
            if request.multipart_form:
                return tuple(
                    (name, value)
                    for name, value in request.multipart_form.items(multi=True)
                    if name.decode(errors="replace") not in self.ignore_payload_params
                )
            if request.urlencoded_form:
                return tuple(
                    (name, value)
                    for name, value in request.urlencoded_form.items(multi=True)
                    if name not in self.ignore_payload_params
                )
        return request.raw_content


class ServerPlayback:
    """Answers requests from recorded flows; also the C{replay.server*} commands.

    @ivar flowmap: recorded flows with a response, by request key, in recorded order.
    """

    def __init__(self) -> None:
        self.flowmap: dict[Hashable, list[HTTPFlow]] = {}
        self.rules = MatchRules()

    def load(self, loader: Loader) -> None:
        loader.add_command("replay.server", self.load_flows)
        loader.add_command("replay.server.add", self.add_flows)
        loader.add_command("replay.server.file", self.load_file)
        loader.add_command("replay.server.stop", self.clear)
        loader.add_command("replay.server.count", self.count)

    def configure(self, updated: set[str]) -> None:
        options = ctx.options
        if "server_replay_kill_extra" in updated and options.server_replay_kill_extra:
            log.warn("server_replay_kill_extra is deprecated; use server_replay_extra=kill")
            options.server_replay_extra = "kill"
        if "server_replay_nopop" in updated and options.server_replay_nopop:
            log.warn("server_replay_nopop is deprecated; use server_replay_reuse")
            options.server_replay_reuse = True
        if MATCH_OPTIONS & updated:
            self.rules = MatchRules.from_options(options)
            self.load_flows([flow for flows in self.flowmap.values() for flow in flows])
        if "server_replay" in updated and options.server_replay:
            try:
                self.load_flows(read_flows_from_paths(options.server_replay))
            except FlowReadException as e:
                raise OptionsError(f"server_replay: {e}") from None

    # Commands.

    def load_flows(self, flows: Sequence[Flow]) -> None:
        """C{replay.server}: answer from these flows (and no others)."""
        self.flowmap = {}
        self.add_flows(flows)

    def add_flows(self, flows: Sequence[Flow]) -> None:
        """C{replay.server.add}: answer from these flows too."""
        for flow in flows:
            if isinstance(flow, HTTPFlow) and flow.response is not None:
                self.flowmap.setdefault(self.rules.key(flow.request), []).append(flow)

    def load_file(self, path: str) -> None:
        """C{replay.server.file}: answer from the flows of a flow file."""
        try:
            self.load_flows(read_flows_from_paths([path]))
        except FlowReadException as e:
            raise CommandError(str(e)) from None

    def clear(self) -> None:
        """C{replay.server.stop}: forget the recorded flows."""
        self.flowmap = {}

    def count(self) -> int:
        """C{replay.server.count}: how many recorded responses are left."""
        return sum(len(flows) for flows in self.flowmap.values())

    # Answering.

    def next_flow(self, flow: HTTPFlow) -> HTTPFlow | None:
        """The recorded flow that answers C{flow}'s request, used up unless reuse is on."""
        key = self.rules.key(flow.request)
        recorded = self.flowmap.get(key)
        if not recorded:
            return None
        if ctx.options.server_replay_reuse:
            return recorded[0]
        if len(recorded) == 1:
            del self.flowmap[key]
        return recorded.pop(0)

    def request(self, flow: HTTPFlow) -> None:
        if not self.flowmap or flow.response is not None:
            return
        recorded = self.next_flow(flow)
        if recorded is not None:
            assert recorded.response is not None
            response = recorded.response.copy()
            if ctx.options.server_replay_refresh:
                response.refresh()
            flow.response = response
            flow.is_replay = "response"
            return
        self._extra(flow)

    def _extra(self, flow: HTTPFlow) -> None:
        """A request with no recorded response: do what C{server_replay_extra} says."""
        extra = ctx.options.server_replay_extra
        if extra == "kill":
            log.warn("server_replay: killed request without a recorded response: {url}", url=flow.request.url)
            flow.kill()
        elif extra != "forward":
            log.info("server_replay: answered {status} to request without a recorded response: {url}", status=extra, url=flow.request.url)
            flow.response = Response.make(int(extra))
