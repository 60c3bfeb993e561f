"""Print the flows of a flow file (one written by twisted_mitm -w, or by mitmproxy).

    python examples/io_read_saved_flows.py flows.mitm

A standalone program, not a script for -s. The same code works with mitmproxy: only
the import line differs.
"""

import sys

from twisted_mitm import http, io
from twisted_mitm.exceptions import FlowReadException


def main(path: str) -> None:
    with open(path, "rb") as file:
        try:
            for flow in io.FlowReader(file).stream():
                if isinstance(flow, http.HTTPFlow):
                    status = flow.response.status_code if flow.response else flow.error
                    print(f"{flow.request.method} {flow.request.pretty_url} -> {status}")
                else:
                    print(f"{flow.type} flow with {len(flow.messages)} messages")
        except FlowReadException as e:
            sys.exit(f"{path}: {e}")


if __name__ == "__main__":
    main(sys.argv[1])
