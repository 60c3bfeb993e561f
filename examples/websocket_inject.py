"""Inject WebSocket messages: in answer to a message, and on a timer.

    twistd -n mitm -s examples/websocket_inject.py

A client message containing "secret" is not forwarded; the client gets "ssssh" back
instead. Every open connection also gets a rotating greeting from the proxy once a
second, from an asyncio task started in websocket_start, until the connection ends.
"""

import asyncio

from twisted_mitm import ctx, http


def websocket_message(flow: http.HTTPFlow) -> None:
    assert flow.websocket is not None
    message = flow.websocket.messages[-1]
    if message.from_client and message.is_text and "secret" in message.text:
        message.drop()
        # to_client=True: answer the sender, who is the client here.
        ctx.master.commands.call("inject.websocket", flow, True, b"ssssh")


async def greet(flow: http.HTTPFlow) -> None:
    assert flow.websocket is not None
    greeting = "hello from the proxy! "
    while flow.websocket.timestamp_end is None:
        ctx.master.commands.call("inject.websocket", flow, True, greeting.encode())
        await asyncio.sleep(1)
        greeting = greeting[1:] + greeting[:1]


def websocket_start(flow: http.HTTPFlow) -> None:
    asyncio.create_task(greet(flow))
