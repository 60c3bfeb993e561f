# -*- test-case-name: tests.test_command -*-
"""Commands: named functions that addons offer and scripts call, as in mitmproxy.

An addon method decorated with C{@command.command("name")} becomes a command when the
addon is loaded (L{CommandManager.collect_commands}); C{loader.add_command} and the proxy
add plain functions the same way. A command is called with Python values
(C{ctx.master.commands.call("flow.kill", [flow])}) or with a command line whose words are
converted to the types the function declares (C{commands.execute("set flow_detail 2")}).
Flow arguments given as text are resolved by the C{view.flows.resolve} command.

Pure registry, no I/O: L{twisted_mitm.master.Master} owns one L{CommandManager}.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import os
import shlex
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from twisted_mitm import types
from twisted_mitm.exceptions import CommandError
from twisted_mitm.flow import Flow
from twisted_mitm.options import parse_bool

__all__ = ["Command", "CommandError", "CommandManager", "command"]

F = TypeVar("F", bound=Callable[..., Any])

#: The command that turns a flow specification (C{@all}, C{@marked}, a filter) into flows.
RESOLVE_FLOWS = "view.flows.resolve"


def command(name: str | None = None) -> Callable[[F], F]:
    """Declare an addon method (or a script's function) as the command C{name}.

    Without a name, the function's name with C{_} turned into C{.} is used. Calling the
    function with arguments that do not fit its signature raises L{CommandError}.
    """

    def decorator(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            _bind(signature, name or function.__name__, args, kwargs)
            return function(*args, **kwargs)

        checked.command_name = name or function.__name__.replace("_", ".")  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorator


def _bind(signature: inspect.Signature, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        raise CommandError(f"{name}: command argument mismatch: {error}") from None


@dataclass(frozen=True)
class Parameter:
    """One positional parameter of a command: its name, declared type, and whether it may be left out."""

    name: str
    type: Any
    optional: bool
    many: bool
    """C{*args}: takes all remaining words."""

    def usage(self) -> str:
        text = f"{self.name}..." if self.many else self.name
        return f"[{text}]" if self.optional or self.many else text


class Command:
    """A registered command: its function, and the parameters a command line fills in."""

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        self.name = name
        self.func = func
        self.signature = inspect.signature(func)
        hints = _type_hints(func)
        self.parameters = [
            Parameter(
                parameter.name,
                hints.get(parameter.name, parameter.annotation),
                parameter.default is not inspect.Parameter.empty,
                parameter.kind is inspect.Parameter.VAR_POSITIONAL,
            )
            for parameter in self.signature.parameters.values()
            if parameter.kind not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
        ]

    def usage(self) -> str:
        """C{name param [optional]...}, as a command line would be written."""
        return " ".join([self.name, *(parameter.usage() for parameter in self.parameters)])

    def call(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """Call with Python values.

        @raise CommandError: they do not fit the signature.
        """
        _bind(self.signature, self.name, args, kwargs)
        return self.func(*args, **kwargs)

    def words_to_args(self, words: Sequence[str], resolve: Callable[[str], Sequence[Flow]]) -> list[Any]:
        """Convert a command line's words to the declared types, one word per parameter.

        @raise CommandError: too many or too few words, or a word that is not a valid value.
        """
        many = self.parameters[-1] if self.parameters and self.parameters[-1].many else None
        fixed = self.parameters[:-1] if many else self.parameters
        required = sum(not parameter.optional for parameter in fixed)
        if len(words) < required or (many is None and len(words) > len(fixed)):
            count = f"{len(words)} argument{'' if len(words) == 1 else 's'}"
            raise CommandError(f"{self.name}: expected {self.usage()}, got {count}")
        pairs = list(zip(fixed, words))
        if many is not None:
            pairs += [(many, word) for word in words[len(fixed) :]]
        return [_convert(parameter, word, resolve, self.name) for parameter, word in pairs]


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The function's annotations, evaluated (scripts may use C{from __future__ import annotations})."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # a name the annotation uses is not importable: keep the raw annotations
        return {}


def _convert(parameter: Parameter, word: str, resolve: Callable[[str], Sequence[Flow]], command_name: str) -> Any:
    kind, element = parameter.type, _sequence_of(parameter.type)
    try:
        if _is_flow_type(kind):
            return _one_flow(resolve(word))
        if _is_flow_type(element):
            return list(resolve(word))
        if element is str:
            return [item.strip() for item in word.split(",")] if word else []
        if kind in (inspect.Parameter.empty, Any, str):
            return word
        if kind in _SCALARS:
            return _SCALARS[kind](word)
    except ValueError as error:
        raise CommandError(f"{command_name}: {parameter.name}: {error}") from None
    raise CommandError(f"{command_name}: {parameter.name} (of type {_type_name(kind)}) cannot be given as text")


def _parse_int(word: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise ValueError(f"{word!r} is not an integer") from None


_SCALARS: dict[Any, Callable[[str], Any]] = {
    int: _parse_int,
    bool: parse_bool,
    types.Path: lambda word: types.Path(os.path.expanduser(word)),
    types.Marker: types.Marker,
}


def _is_flow_type(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Flow)


def _sequence_of(kind: Any) -> Any:
    """C{X} for C{Sequence[X]} (typing's or collections.abc's), else C{None}."""
    if typing.get_origin(kind) in (collections.abc.Sequence, list) and len(typing.get_args(kind)) == 1:
        return typing.get_args(kind)[0]
    return None


def _one_flow(flows: Sequence[Flow]) -> Flow:
    if len(flows) != 1:
        raise ValueError(f"the command needs one flow, the specification matched {len(flows)}")
    return flows[0]


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind)


class CommandManager:
    """Named commands (C{"set"}, C{"flow.kill"}, C{"inject.websocket"}, ...) of one master.

    @ivar commands: every command by name.
    """

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}

    def add(self, name: str, func: Callable[..., Any]) -> None:
        """Register C{func} as command C{name}, replacing any previous one."""
        self.commands[name] = Command(name, func)

    def collect_commands(self, addon: object) -> None:
        """Register the addon's attributes decorated with L{command}."""
        for attribute in dir(addon):
            if attribute.startswith("__"):
                continue
            try:
                value = getattr(addon, attribute)
                name = getattr(value, "command_name", None)
            except Exception:  # a property or __getattr__ that fails: not a command
                continue
            if isinstance(name, str) and callable(value):
                self.add(name, value)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a command with Python values and return its result.

        @raise CommandError: no command has this name, or the arguments do not fit it.
        """
        return self._get(name).call(args, kwargs)

    def call_strings(self, name: str, words: Sequence[str]) -> Any:
        """Run a command with words converted to the types its function declares.

        @raise CommandError: unknown command, wrong number of words, or a bad value.
        """
        command = self._get(name)
        return command.call(command.words_to_args(words, self._resolve), {})

    def execute(self, command_line: str) -> Any:
        """Run a command line: the command's name, then its arguments, quoted as in a shell.

        @raise CommandError: an empty or badly quoted line, or as L{call_strings}.
        """
        try:
            words = shlex.split(command_line)
        except ValueError as error:
            raise CommandError(f"cannot parse command {command_line!r}: {error}") from None
        if not words:
            raise CommandError(f"invalid command: {command_line!r}")
        return self.call_strings(words[0], words[1:])

    def _get(self, name: str) -> Command:
        try:
            return self.commands[name]
        except KeyError:
            raise CommandError(f"unknown command: {name}") from None

    def _resolve(self, specification: str) -> Sequence[Flow]:
        if RESOLVE_FLOWS not in self.commands:
            raise CommandError(f"cannot resolve the flows {specification!r}: no {RESOLVE_FLOWS} command")
        return self.call(RESOLVE_FLOWS, specification)
