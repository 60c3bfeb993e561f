"""Look at a streamed body chunk by chunk with a plain function.

Run with: twistd -n mitm -s examples/complex/stream_chunks.py

When `.stream` is a plain function, the proxy calls it with every chunk of the body as it
passes and sends on what it returns (bytes, or an iterable of bytes). It is called once
more with b"" when the body has ended, which is the moment to finish up or to append a
last piece.

This script forwards every response body unchanged while computing its SHA-256; the
digest is logged and kept in `flow.metadata["sha256"]` by the time the `response` hook
runs, although the body itself was never held in memory.
"""

import hashlib
import logging

from twisted_mitm import http


def responseheaders(flow: http.HTTPFlow) -> None:
    digest = hashlib.sha256()

    def hash_chunk(chunk: bytes) -> bytes:
        if chunk:
            digest.update(chunk)
        else:
            flow.metadata["sha256"] = digest.hexdigest()
            logging.info("%s sha256=%s", flow.request.pretty_url, digest.hexdigest())
        return chunk

    flow.response.stream = hash_chunk
