# -*- test-case-name: tests.test_addonmanager -*-
"""
The master: what C{ctx.master} gives scripts. It holds the options, the addon chain, the
commands addons register, the way to stop the proxy, and L{Master.load_flow} for flows
read from a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable

from twisted.internet.defer import Deferred

from twisted_mitm import ctx, eventsequence
from twisted_mitm.addonmanager import AddonManager
from twisted_mitm.command import CommandError, CommandManager
from twisted_mitm.flow import Flow
from twisted_mitm.hooks import Hook
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

    def load_flow(self, flow: Flow) -> Deferred[None]:
        """Run the hooks C{flow} would have raised live, in order (mitmproxy's C{load_flow}).

        Each hook waits for the previous one's handlers; the result fires when all have run.
        """
        return Deferred.fromCoroutine(self._trigger_each(eventsequence.iterate(flow)))

    async def _trigger_each(self, hooks: Iterable[Hook]) -> None:
        for hook in hooks:
            await self.addons.trigger(hook)
