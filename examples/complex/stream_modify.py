"""Rewrite a streamed response body on the fly with a generator.

Run with: twistd -n mitm -s examples/complex/stream_modify.py

When `.stream` is a generator function, it receives an iterator over the body's chunks
as they arrive and yields the chunks to send on. It runs in a thread of its own, so it
may take its time without holding up other flows; memory stays bounded because the
proxy stops reading from the server while the generator is behind.

Chunk boundaries fall wherever the network put them, so a pattern can be split between
two chunks. The generator below keeps the last few bytes of each chunk back and joins
them to the next one, so every occurrence is replaced. As the body's length may change,
the proxy sends it chunked (or close-delimited to HTTP/1.0 clients), never with a stale
Content-Length.
"""

from collections.abc import Iterator

from twisted_mitm import http

OLD = b"foo"
NEW = b"bar"


def replace_across_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    held = b""
    for chunk in chunks:
        data = (held + chunk).replace(OLD, NEW)
        # A tail shorter than OLD could be the start of a match in the next chunk.
        cut = max(len(data) - (len(OLD) - 1), 0)
        held = data[cut:]
        if cut:
            yield data[:cut]
    if held:
        yield held


def responseheaders(flow: http.HTTPFlow) -> None:
    flow.response.stream = replace_across_chunks
