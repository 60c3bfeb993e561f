# -*- test-case-name: tests.test_io -*-
"""Flow states of older format versions, brought up to L{FLOW_FORMAT_VERSION}.

mitmproxy numbers its flow format apart from its releases and migrates a loaded state
one version at a time. mitmproxy 12 writes version 21; the steps from 12 (the first
version with WebSocket data inside HTTP flows, mitmproxy 7) are small edits and are
repeated here. Older files need mitmproxy itself: load and save them with it first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted_mitm.version import FLOW_FORMAT_VERSION

State = dict[Any, Any]

OLDEST_VERSION = 12
"""The oldest flow format version read."""


def _marked_is_a_string(state: State) -> None:
    state["marked"] = ":default:" if state["marked"] else ""


def _comment_and_response_start(state: State) -> None:
    state["comment"] = ""
    response = state.get("response")
    if response and response["timestamp_start"] is None:
        request_end = state["request"]["timestamp_end"]
        response["timestamp_start"], response["timestamp_end"] = request_end, request_end + 1


def _websocket_messages_injected(state: State) -> None:
    websocket = state.get("websocket")
    if websocket:
        websocket["messages"] = [[*message, False] for message in websocket["messages"]]


def _timestamp_created(state: State) -> None:
    state["timestamp_created"] = state.get("request", state["client_conn"])["timestamp_start"]


def _no_mode(state: State) -> None:
    state.pop("mode", None)


def _proxy_mode(state: State) -> None:
    state["client_conn"]["proxy_mode"] = "regular"


def _connection_names(state: State) -> None:
    client, server = state["client_conn"], state["server_conn"]
    client["peername"] = client.pop("address", None)
    if client.get("timestamp_start") is None:
        client["timestamp_start"] = 0.0
    client.pop("tls_extensions", None)
    server["peername"] = server.pop("ip_address", None)
    server["sockname"] = server.pop("source_address", None)
    server["via"] = server.pop("via2", None)
    for connection in (client, server):
        connection.pop("tls_established", None)
        connection["cipher"] = connection.pop("cipher_name", None)
        connection.setdefault("transport_protocol", "tcp")
        for name in ("peername", "sockname", "address"):
            address = connection.get(name)
            if address and isinstance(address[0], bytes):
                connection[name] = [address[0].decode(errors="backslashreplace"), *address[1:]]
    if server["sni"] is True:
        server["sni"] = server["address"][0]


def _no_connection_state(state: State) -> None:
    state["client_conn"].pop("state", None)
    state["server_conn"].pop("state", None)


def _quic_version_name(state: State) -> None:
    for name in ("client_conn", "server_conn"):
        if state[name]["tls_version"] == "QUIC":
            state[name]["tls_version"] = "QUICv1"


_STEPS: dict[int, Callable[[State], None]] = {
    12: _marked_is_a_string,
    13: _comment_and_response_start,
    14: _websocket_messages_injected,
    15: _timestamp_created,
    16: _no_mode,
    17: _proxy_mode,
    18: _connection_names,
    19: _no_connection_state,
    20: _quic_version_name,
}
"""The edit that takes a state from each version to the next."""


def migrate_flow(state: State) -> State:
    """Bring a loaded flow state to L{FLOW_FORMAT_VERSION}, in place.

    @raise ValueError: for a version that is not read, naming it.
    """
    version = state.get("version", state.get(b"version"))
    is_number = isinstance(version, int) and not isinstance(version, bool)
    if is_number and version > FLOW_FORMAT_VERSION:
        raise ValueError(f"flow format version {version} is newer than twisted_mitm reads (up to {FLOW_FORMAT_VERSION})")
    if not is_number or version < OLDEST_VERSION:
        raise ValueError(
            f"flow format version {_shown(version)} is older than twisted_mitm reads "
            f"({OLDEST_VERSION} to {FLOW_FORMAT_VERSION}); load and save the file with mitmproxy to convert it"
        )
    try:
        for step in range(version, FLOW_FORMAT_VERSION):
            _STEPS[step](state)
            state["version"] = step + 1
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"invalid flow of format version {version}: {e!r}") from None
    return state


def _shown(version: Any) -> str:
    """A version as mitmproxy wrote it: C{(0, 11)} tuples once, ints since."""
    if isinstance(version, (list, tuple)):
        return ".".join(str(part) for part in version)
    return repr(version)
