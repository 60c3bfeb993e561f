"""
Rewrite the bytes of raw TCP connections: every "foo" becomes "bar".

mitmproxy's examples/addons/tcp-simple.py with only the import changed. TCP is a byte
stream: a "message" is whatever one read from the socket returned, so a "foo" split
across two reads is not replaced. Good enough for a quick experiment.

    twistd -n mitm -s examples/tcp_simple.py

Any CONNECT (or SOCKS5, transparent) tunnel whose bytes are neither TLS nor HTTP is a
TCP flow, including a client that speaks first with a line that has not ended yet.
"""

import logging

from twisted_mitm import tcp
from twisted_mitm.utils import strutils


def tcp_message(flow: tcp.TCPFlow):
    message = flow.messages[-1]
    message.content = message.content.replace(b"foo", b"bar")

    logging.info(
        f"tcp_message[from_client={message.from_client}), content={strutils.bytes_to_escaped_str(message.content)}]"
    )
