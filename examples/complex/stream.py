"""Stream response bodies instead of buffering them.

Run with: twistd -n mitm -s examples/complex/stream.py

Headers are still read whole and pass through every hook, but a body tagged with
`.stream = True` goes to the client as the server sends it, byte for byte, with the
server's own framing. Streamed bodies are not kept: later hooks see an empty body and
changes to it are ignored.

Tagging every response is what `--set stream_large_bodies=1` does; a script can decide
per response instead. Here everything streams except small text documents, which stay
buffered so that other scripts can still read and rewrite them.
"""

from twisted_mitm import http

#: Text bodies smaller than this (when the server says how large they are) stay buffered.
SMALL_TEXT = 64 * 1024


def responseheaders(flow: http.HTTPFlow) -> None:
    response = flow.response
    content_type = response.headers.get("content-type", "")
    length = response.headers.get("content-length", "")
    small_text = content_type.startswith("text/") and length.isdigit() and int(length) < SMALL_TEXT
    response.stream = not small_text
