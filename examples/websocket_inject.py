"""Inject WebSocket messages: in answer to a message, and on a timer.

    twistd -n mitm -s examples/websocket_inject.py

A text message from the client that contains "secret" is not forwarded; the client gets
"ssssh" back instead. Every open connection also gets a rotating greeting from the proxy
once a second, from an asyncio task started in websocket_start and cancelled in
websocket_end.
"""

import asyncio

from twisted_mitm import ctx, http

# The greeting task of each open connection, by flow id: asyncio keeps only weak
# references to tasks, and websocket_end needs it to stop the greetings.
greeters: dict[str, asyncio.Task] = {}


def websocket_message(flow: http.HTTPFlow) -> None:
    assert flow.websocket is not None
    message = flow.websocket.messages[-1]
    if message.from_client and message.is_text and "secret" in message.text:
        message.drop()
        # to_client=True: answer the sender, who is the client here.
        ctx.master.commands.call("inject.websocket", flow, True, b"ssssh")


async def greet(flow: http.HTTPFlow) -> None:
    greeting = "hello from the proxy! "
    while True:
        ctx.master.commands.call("inject.websocket", flow, True, greeting.encode())
        await asyncio.sleep(1)
        greeting = greeting[1:] + greeting[:1]


def websocket_start(flow: http.HTTPFlow) -> None:
    greeters[flow.id] = asyncio.create_task(greet(flow))


def websocket_end(flow: http.HTTPFlow) -> None:
    greeters.pop(flow.id).cancel()
