"""Log every WebSocket message and rewrite some of them on the way.

    twistd -n mitm -s examples/websocket_simple.py

Messages from the client that start with "Hello" reach the server starting with "HAPPY";
messages containing "FOOBAR" are not forwarded at all. With --set stream_websockets=true
the messages are still logged, but no longer changed.
"""

import logging
import re

from twisted_mitm import http


def websocket_start(flow: http.HTTPFlow) -> None:
    logging.info("WebSocket open: %s", flow.request.pretty_url)


def websocket_message(flow: http.HTTPFlow) -> None:
    assert flow.websocket is not None
    message = flow.websocket.messages[-1]
    sender = "client" if message.from_client else "server"
    logging.info("%s sent %r", sender, message)

    if message.from_client:
        message.content = re.sub(rb"^Hello", b"HAPPY", message.content)
        if b"FOOBAR" in message.content:
            message.drop()


def websocket_end(flow: http.HTTPFlow) -> None:
    assert flow.websocket is not None
    who = "client" if flow.websocket.closed_by_client else "server"
    logging.info(
        "WebSocket closed by the %s: code %s %r (%d messages)",
        who,
        flow.websocket.close_code,
        flow.websocket.close_reason,
        len(flow.websocket.messages),
    )
