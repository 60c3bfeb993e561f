# -*- test-case-name: tests.test_addonmanager -*-
"""
The master: what C{ctx.master} gives scripts. It holds the options, the addon chain, the
commands addons register, the way to stop the proxy, and L{Master.load_flow} for flows
read from a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from twisted.internet.defer import Deferred

from twisted_mitm import ctx, eventsequence
from twisted_mitm.addonmanager import AddonManager
from twisted_mitm.exceptions import TwistedMitmError
from twisted_mitm.flow import Flow
from twisted_mitm.hooks import Hook
from twisted_mitm.options import Options


class CommandError(TwistedMitmError):
    """A command does not exist, or could not do its work."""


class CommandManager:
    """Named commands (C{"inject.websocket"}, ...) that scripts call through C{ctx.master}."""

    def __init__(self) -> None:
        self._commands: dict[str, Callable[..., Any]] = {}

    def add(self, name: str, func: Callable[..., Any]) -> None:
        """Register C{func} as command C{name}, replacing any previous one."""
        self._commands[name] = func

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """
        Run a command and return its result.

        @raise CommandError: no command has this name.
        """
        try:
            func = self._commands[name]
        except KeyError:
            raise CommandError(f"unknown command: {name}") from None
        return func(*args, **kwargs)


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
