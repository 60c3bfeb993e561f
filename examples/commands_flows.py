"""A command taking flows: `myaddon.addheader @all` adds a header to the requests of the
flows given (Python flow objects, or a flow specification in a command line).

mitmproxy's examples/addons/commands-flows.py with only the imports changed.
"""

import logging
from collections.abc import Sequence

from twisted_mitm import command, flow, http
from twisted_mitm.log import ALERT


class MyAddon:
    @command.command("myaddon.addheader")
    def addheader(self, flows: Sequence[flow.Flow]) -> None:
        for f in flows:
            if isinstance(f, http.HTTPFlow):
                f.request.headers["myheader"] = "value"
        logging.log(ALERT, "done")


addons = [MyAddon()]
