"""
Print the HTTP trailers of every message, and add one to requests and responses of
/inject_trailers.

mitmproxy's examples/addons/http-trailers.py with only the imports changed. Trailers are
header fields sent after the body; over HTTP/1.1 they need chunked transfer coding, and
the fields should be announced in a Trailer header.

    twistd -n mitm -s examples/http_trailers.py
"""

from twisted_mitm import http
from twisted_mitm.http import Headers


def request(flow: http.HTTPFlow):
    if flow.request.trailers:
        print("HTTP Trailers detected! Request contains:", flow.request.trailers)

    if flow.request.path == "/inject_trailers":
        if flow.request.is_http10:
            # no trailers in HTTP/1.0
            return
        elif flow.request.is_http11:
            if not flow.request.content:
                # an empty chunked body with trailers upsets some servers
                return
            # HTTP/1.1 carries trailers only with chunked transfer coding
            flow.request.headers["transfer-encoding"] = "chunked"
        # HTTP/2 carries trailers on any message

        flow.request.headers["trailer"] = "x-my-injected-trailer-header"
        flow.request.trailers = Headers([(b"x-my-injected-trailer-header", b"foobar")])
        print("Injected a new request trailer...", flow.request.headers["trailer"])


def response(flow: http.HTTPFlow):
    assert flow.response
    if flow.response.trailers:
        print("HTTP Trailers detected! Response contains:", flow.response.trailers)

    if flow.request.path == "/inject_trailers":
        if flow.request.is_http10:
            return
        elif flow.request.is_http11:
            if not flow.response.content:
                return
            flow.response.headers["transfer-encoding"] = "chunked"

        flow.response.headers["trailer"] = "x-my-injected-trailer-header"
        flow.response.trailers = Headers([(b"x-my-injected-trailer-header", b"foobar")])
        print("Injected a new response trailer...", flow.response.headers["trailer"])
