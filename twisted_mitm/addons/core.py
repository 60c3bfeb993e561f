# -*- test-case-name: tests.test_command -*-
"""The commands scripts use most, as mitmproxy's core addon offers them.

C{set} changes an option; C{flow.resume}, C{flow.mark}, C{flow.mark.toggle} and
C{flow.kill} act on flows, given as Python objects (C{commands.call}) or as a flow
specification in a command line (C{@all}, C{@marked}, a filter; see
L{twisted_mitm.addons.liveflows}). Each flow command announces the flows it changed
with the C{update} hook.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from twisted.logger import Logger

from twisted_mitm import command, ctx, types
from twisted_mitm.exceptions import CommandError, OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.hooks import UpdateHook
from twisted_mitm.options import parse_bool

log = Logger()

DEFAULT_MARKER = ":default:"
_MARKER = re.compile(r":[\w+-]+:|\S")


def marker_value(text: str) -> str:
    """The mark a C{flow.mark} argument stands for: C{""} (none), C{:name:} or one character.

    A boolean word (C{true}, C{false}, ...) means the default mark or none, as mitmproxy's
    marks were before they became names.

    @raise CommandError: anything else.
    """
    if text == "" or _MARKER.fullmatch(text):
        return text
    try:
        return DEFAULT_MARKER if parse_bool(text) else ""
    except ValueError:
        raise CommandError(f"invalid marker value {text!r}: use :name:, one character, true or false") from None


class Core:
    """Provides the C{set} and C{flow.*} commands."""

    @command.command("set")
    def set(self, option: str, *value: str) -> None:
        """
        Set an option: C{set NAME VALUE} or C{set NAME=VALUE}. Without a value, a boolean
        becomes true, an optional value is unset and a list is emptied; several values
        fill a list option (other options get them joined with spaces).
        """
        name, equals, given = option.partition("=")
        if equals:
            value = (given, *value)
        if not value:
            specs = [name]
        elif name in ctx.options and ctx.options.typespec_name(name) == "sequence of str":
            specs = [f"{name}={item}" for item in value]
        else:
            specs = [f"{name}={' '.join(value)}"]
        try:
            ctx.options.set(*specs)
        except OptionsError as error:
            raise CommandError(str(error)) from None

    @command.command("flow.resume")
    def resume(self, flows: Sequence[Flow]) -> None:
        """Resume the intercepted flows among C{flows}."""
        intercepted = [flow for flow in flows if flow.intercepted]
        for flow in intercepted:
            flow.resume()
        self._updated(intercepted)

    @command.command("flow.mark")
    def mark(self, flows: Sequence[Flow], marker: types.Marker) -> None:
        """Mark flows with C{marker} (C{:default:}, another C{:name:}, one character); C{""} unmarks."""
        value = marker_value(marker)
        for flow in flows:
            flow.marked = value
        self._updated(list(flows))

    @command.command("flow.mark.toggle")
    def mark_toggle(self, flows: Sequence[Flow]) -> None:
        """Unmark marked flows, mark the others with C{:default:}."""
        for flow in flows:
            flow.marked = "" if flow.marked else DEFAULT_MARKER
        self._updated(list(flows))

    @command.command("flow.kill")
    def kill(self, flows: Sequence[Flow]) -> None:
        """Kill the flows that are still running: nothing more is forwarded for them."""
        killed = [flow for flow in flows if flow.killable]
        for flow in killed:
            flow.kill()
        log.info("Killed {count} flows.", count=len(killed))
        self._updated(killed)

    def _updated(self, flows: list[Flow]) -> None:
        if flows:
            ctx.master.addons.trigger(UpdateHook(flows))
