# -*- test-case-name: tests.test_addonmanager -*-
"""
The master: what C{ctx.master} gives scripts. It holds the options, the addon chain, the
commands addons register, and the way to stop the proxy.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted_mitm import ctx
from twisted_mitm.addonmanager import AddonManager
from twisted_mitm.exceptions import TwistedMitmError
from twisted_mitm.options import Options


class CommandError(TwistedMitmError):
    """A command does not exist."""


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
