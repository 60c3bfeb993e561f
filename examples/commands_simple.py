"""A command of our own: `myaddon.inc` counts how often it was called.

mitmproxy's examples/addons/commands-simple.py with only the import changed. Call it from
another script with ctx.master.commands.call("myaddon.inc"), or
ctx.master.commands.execute("myaddon.inc").
"""

import logging

from twisted_mitm import command


class MyAddon:
    def __init__(self):
        self.num = 0

    @command.command("myaddon.inc")
    def inc(self) -> None:
        self.num += 1
        logging.info(f"num = {self.num}")


addons = [MyAddon()]
