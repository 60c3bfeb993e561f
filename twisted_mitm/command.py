# -*- test-case-name: tests.test_addonmanager -*-
"""Named commands that addons register and scripts call (C{ctx.master.commands}).

Pure registry, no I/O: L{twisted_mitm.master.Master} owns one L{CommandManager}.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted_mitm.exceptions import TwistedMitmError


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
