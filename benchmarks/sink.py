"""An upload sink: reads a whole request body (Content-Length or chunked), then answers 200.

Run as C{python -m benchmarks.sink PORT}. Blocking threads reading into one reusable
buffer: one C{recv_into} per 1 MiB, so the sink costs little next to the relays measured.
"""

from __future__ import annotations

import socket
import socketserver
import sys

CHUNK = 1 << 20


class SinkHandler(socketserver.BaseRequestHandler):
    """Serves requests on one connection until the client closes it."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        self.buffer = bytearray(CHUNK)
        self.view = memoryview(self.buffer)
        self.pending = b""
        while True:
            head = self._read_head(sock)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            if headers.get("transfer-encoding", "").lower() == "chunked":
                received = self._read_chunked(sock)
            else:
                received = self._discard(sock, int(headers.get("content-length", "0")))
            body = str(received).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def _read_head(self, sock: socket.socket) -> bytes | None:
        data = self.pending
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                return None
            data += more
        head, _, self.pending = data.partition(b"\r\n\r\n")
        return head

    def _discard(self, sock: socket.socket, length: int) -> int:
        taken = min(length, len(self.pending))
        self.pending = self.pending[taken:]
        remaining = length - taken
        while remaining:
            got = sock.recv_into(self.view, min(remaining, CHUNK))
            if not got:
                raise ConnectionError("client closed mid-body")
            remaining -= got
        return length

    def _read_line(self, sock: socket.socket) -> bytes:
        while b"\r\n" not in self.pending:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("client closed mid-body")
            self.pending += more
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line

    def _read_chunked(self, sock: socket.socket) -> int:
        total = 0
        while True:
            size = int(self._read_line(sock).split(b";")[0], 16)
            if size == 0:
                while self._read_line(sock):
                    pass
                return total
            total += self._discard(sock, size)
            self._read_line(sock)


class SinkServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main() -> None:
    with SinkServer(("127.0.0.1", int(sys.argv[1])), SinkHandler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
