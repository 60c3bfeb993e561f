# -*- test-case-name: tests.test_addonmanager -*-
"""What the C{load} hook hands an addon: L{Loader}, to declare options and commands.

Also importable as C{twisted_mitm.addonmanager.Loader}, mitmproxy's place for it.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from twisted.logger import Logger

from twisted_mitm.command import CommandManager
from twisted_mitm.options import Options

_log = Logger()


class AddonHost(Protocol):
    """What addons are loaded into: the options and commands they extend (a master)."""

    options: Options
    commands: CommandManager


class Loader:
    """What the C{load} hook receives: declares the addon's options and commands."""

    def __init__(self, master: AddonHost) -> None:
        self.master = master

    def add_option(
        self,
        name: str,
        typespec: Any,
        default: Any,
        help: str,
        choices: Sequence[str] | None = None,
    ) -> None:
        """
        Declare an option (mitmproxy's signature). Declaring it again with the same type, as
        a reloaded script does, keeps its value.
        """
        options = self.master.options
        before = options.typespec_name(name) if name in options else None
        options.add_option(name, typespec, default, help, choices)
        after = options.typespec_name(name)
        if before not in (None, after):
            _log.warn(
                "option {name} re-declared as {after} (was {before})",
                name=name,
                after=after,
                before=before,
            )

    def add_command(self, path: str, func: Callable[..., Any]) -> None:
        """Make C{func} callable as C{ctx.master.commands.call(path, ...)}."""
        self.master.commands.add(path, func)
