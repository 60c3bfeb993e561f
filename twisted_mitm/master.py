# -*- test-case-name: tests.test_addonmanager -*-
"""
The master: what C{ctx.master} gives scripts. It holds the options, the addon chain, the
commands addons register, and the way to stop the proxy.
"""

from __future__ import annotations

from typing import Callable

from twisted_mitm import ctx
from twisted_mitm.addonmanager import AddonManager
from twisted_mitm.command import CommandError, CommandManager
from twisted_mitm.options import Options

__all__ = ["CommandError", "CommandManager", "Master"]


class Master:
    """
    Options, addons and commands of one proxy. Creating it makes it C{ctx.master} and its
    options C{ctx.options}.

    @ivar _shutdown: stops the proxy; the service passes one that stops the reactor.
    """

    def __init__(self, options: Options, shutdown: Callable[[], None]) -> None:
        self.options = options
        self.commands = CommandManager()
        self.addons = AddonManager(self)
        self._shutdown = shutdown
        ctx.master = self
        ctx.options = options

    def shutdown(self) -> None:
        """Stop the proxy (mitmproxy's C{ctx.master.shutdown()})."""
        self._shutdown()
