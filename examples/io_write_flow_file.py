"""Write the flows whose response is an error (4xx, 5xx) to a flow file of their own.

    twistd -n mitm -s examples/io_write_flow_file.py --set error_flows_file=errors.mitm

(`-w` writes every flow; a script writes what it chooses.) The file opens in mitmproxy
as in twisted_mitm (`-r errors.mitm`).
"""

from typing import BinaryIO

from twisted_mitm import ctx, http, io


class ErrorFlowWriter:
    def __init__(self) -> None:
        self.file: BinaryIO | None = None
        self.writer: io.FlowWriter | None = None

    def load(self, loader) -> None:
        loader.add_option(
            name="error_flows_file", typespec=str, default="error-flows.mitm",
            help="Where to write flows whose response is an error.",
        )

    def running(self) -> None:
        self.file = open(ctx.options.error_flows_file, "wb")
        self.writer = io.FlowWriter(self.file)

    def response(self, flow: http.HTTPFlow) -> None:
        if self.writer is not None and flow.response.status_code >= 400:
            self.writer.add(flow)
            self.file.flush()

    def done(self) -> None:
        if self.file is not None:
            self.file.close()


addons = [ErrorFlowWriter()]
