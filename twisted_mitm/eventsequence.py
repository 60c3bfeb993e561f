# -*- test-case-name: tests.test_eventsequence -*-
"""The hooks a finished flow would have raised live, in order (mitmproxy's C{eventsequence}).

L{twisted_mitm.master.Master.load_flow} runs them for flows read from a file, so addons
and scripts see a loaded flow the way they saw it on the wire. The flow's messages are
handed over one at a time: each C{websocket_message}/C{tcp_message} finds its message
last in the list, as it would live.
"""

from __future__ import annotations

from collections.abc import Iterator

from twisted_mitm import hooks
from twisted_mitm.flow import Flow
from twisted_mitm.http import HTTPFlow
from twisted_mitm.tcp import TCPFlow


def iterate(flow: Flow) -> Iterator[hooks.Hook]:
    """Yield the hooks of C{flow}, filling its message lists as they go.

    @raise TypeError: for a flow that is neither HTTP nor TCP.
    """
    if isinstance(flow, HTTPFlow):
        return _http(flow)
    if isinstance(flow, TCPFlow):
        return _tcp(flow)
    raise TypeError(f"unknown flow type: {type(flow).__name__}")


def _http(flow: HTTPFlow) -> Iterator[hooks.Hook]:
    yield hooks.RequestheadersHook(flow)
    yield hooks.RequestHook(flow)
    if flow.response is not None:
        yield hooks.ResponseheadersHook(flow)
        yield hooks.ResponseHook(flow)
    if flow.websocket is not None:
        messages, flow.websocket.messages = flow.websocket.messages, []
        yield hooks.WebsocketStartHook(flow)
        for message in messages:
            flow.websocket.messages.append(message)
            yield hooks.WebsocketMessageHook(flow)
        yield hooks.WebsocketEndHook(flow)
    elif flow.error is not None:
        yield hooks.ErrorHook(flow)


def _tcp(flow: TCPFlow) -> Iterator[hooks.Hook]:
    messages, flow.messages = flow.messages, []
    yield hooks.TcpStartHook(flow)
    for message in messages:
        flow.messages.append(message)
        yield hooks.TcpMessageHook(flow)
    yield hooks.TcpErrorHook(flow) if flow.error is not None else hooks.TcpEndHook(flow)
