"""A command taking flows and a file path: `myaddon.histogram @all ~/hosts.txt` writes how
many of the flows went to each host.

mitmproxy's examples/addons/commands-paths.py with only the imports changed.
"""

import logging
from collections.abc import Sequence

from twisted_mitm import command, flow, http, types
from twisted_mitm.log import ALERT


class MyAddon:
    @command.command("myaddon.histogram")
    def histogram(
        self,
        flows: Sequence[flow.Flow],
        path: types.Path,
    ) -> None:
        totals: dict[str, int] = {}
        for f in flows:
            if isinstance(f, http.HTTPFlow):
                totals[f.request.host] = totals.setdefault(f.request.host, 0) + 1

        with open(path, "w+") as fp:
            for cnt, dom in sorted((v, k) for (k, v) in totals.items()):
                fp.write(f"{cnt}: {dom}\n")

        logging.log(ALERT, "done")


addons = [MyAddon()]
