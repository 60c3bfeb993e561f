"""twisted_mitm: an intercepting HTTP/HTTPS/WebSocket proxy on Twisted that streams bodies of any size."""

__version__ = "0.1.0"
