"""Add a header to every response: the smallest useful script.

    twistd -n mitm -s examples/add_header.py
"""

from twisted_mitm import http


def response(flow: http.HTTPFlow) -> None:
    flow.response.headers["x-seen-by"] = "twisted_mitm"
