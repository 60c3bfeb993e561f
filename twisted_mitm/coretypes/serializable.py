# -*- test-case-name: tests.test_serializable -*-
"""Objects that save their state as plain data and are rebuilt from it (mitmproxy's API).

A state is made of C{None}, bools, ints, floats, bytes, str, lists, tuples and dicts:
what L{twisted_mitm.io.tnetstring} can write. Flows, their messages and connection
records implement L{Serializable}; records that are dataclasses get it from their fields
and type hints with L{SerializableDataclass}. Pure standard library.
"""

from __future__ import annotations

import abc
import collections.abc
import dataclasses
import functools
import types
import typing
import uuid
from typing import Any, TypeVar

State = Any
"""Plain data: C{None}, bool, int, float, bytes, str, and lists/tuples/dicts of them."""

S = TypeVar("S", bound="Serializable")
D = TypeVar("D", bound="SerializableDataclass")


class Serializable(abc.ABC):
    """Saves its state with L{get_state} and is rebuilt with L{from_state}."""

    @classmethod
    @abc.abstractmethod
    def from_state(cls: type[S], state: State) -> S:
        """A new object from C{state} (which may be consumed)."""

    @abc.abstractmethod
    def get_state(self) -> State:
        """The object's state as plain data."""

    @abc.abstractmethod
    def set_state(self, state: State) -> None:
        """Take on C{state} (which may be consumed)."""

    def copy(self: S) -> S:
        """A copy made through the state; a copy with an C{id} gets a new one."""
        state = self.get_state()
        if isinstance(state, dict) and "id" in state:
            state["id"] = str(uuid.uuid4())
        return self.from_state(state)


class SerializableDataclass(Serializable):
    """A dataclass whose state is a dict of its fields, each converted by its type hint.

    Hints understood: C{X | None}, C{list[X]}, C{Sequence[X]}, C{tuple[...]}, a
    L{Serializable} class, C{Literal[...]}, and the plain types. Loading checks each value
    against its hint and raises C{ValueError} naming the field.
    """

    @classmethod
    def from_state(cls: type[D], state: State) -> D:
        values = {name: _value_of(_take(state, name, cls), hint, name) for name, hint in _hints(cls)}
        _refuse_leftovers(state, cls)
        return cls(**values)

    def get_state(self) -> State:
        return {name: _state_of(getattr(self, name), hint) for name, hint in _hints(type(self))}

    def set_state(self, state: State) -> None:
        values = {name: _value_of(_take(state, name, type(self)), hint, name) for name, hint in _hints(type(self))}
        _refuse_leftovers(state, type(self))
        for name, value in values.items():
            setattr(self, name, value)


@functools.cache
def _hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """C{(name, type hint)} of each dataclass field, in declaration order."""
    hints = typing.get_type_hints(cls)
    return tuple((field.name, hints[field.name]) for field in dataclasses.fields(cls))


def _take(state: dict[str, State], name: str, cls: type) -> State:
    try:
        return state.pop(name)
    except KeyError:
        raise ValueError(f"{cls.__name__} state has no {name!r}") from None


def _refuse_leftovers(state: dict[str, State], cls: type) -> None:
    if state:
        raise ValueError(f"{cls.__name__} state has unknown fields: {', '.join(map(str, state))}")


def _optional(hint: Any) -> tuple[Any, bool]:
    """C{(X, True)} for C{X | None}, else C{(hint, False)}."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _is_sequence(origin: Any) -> bool:
    return origin in (list, collections.abc.Sequence)


def _state_of(value: Any, hint: Any) -> State:
    """The state of a field value of type C{hint}."""
    hint, _ = _optional(hint)
    if value is None:
        return None
    if isinstance(value, Serializable):
        return value.get_state()
    origin = typing.get_origin(hint)
    if _is_sequence(origin):
        (item_hint,) = typing.get_args(hint)
        return [_state_of(item, item_hint) for item in value]
    if origin is tuple:
        return tuple(_state_of(item, item_hint) for item, item_hint in _zip_tuple(value, hint, "value"))
    return value


def _value_of(state: State, hint: Any, name: str) -> Any:
    """The field value of type C{hint} that C{state} describes; C{ValueError} if it does not fit."""
    hint, optional = _optional(hint)
    if state is None:
        if optional:
            return None
        raise ValueError(f"{name} must not be None")
    origin = typing.get_origin(hint)
    if origin is None and isinstance(hint, type) and issubclass(hint, Serializable):
        return hint.from_state(state)
    if origin is typing.Literal:
        if state not in typing.get_args(hint):
            raise ValueError(f"{name}: {state!r} is not one of {typing.get_args(hint)}")
        return state
    if _is_sequence(origin) or origin is tuple:
        if not isinstance(state, (list, tuple)):
            raise ValueError(f"{name}: expected a list, got {state!r}")
        if origin is tuple:
            return tuple(_value_of(item, item_hint, name) for item, item_hint in _zip_tuple(state, hint, name))
        (item_hint,) = typing.get_args(hint)
        return [_value_of(item, item_hint, name) for item in state]
    return _plain(state, hint, name)


def _zip_tuple(items: Any, hint: Any, name: str) -> list[tuple[Any, Any]]:
    """Pair a tuple's items with the hints of C{tuple[...]}.

    An address may carry more items than C{tuple[str, int]} names (IPv6 flow info and scope
    id, as mitmproxy keeps them): those extra items are ints.
    """
    item_hints = typing.get_args(hint)
    if len(items) < len(item_hints):
        raise ValueError(f"{name}: expected {len(item_hints)} items, got {items!r}")
    return [(item, item_hints[i] if i < len(item_hints) else int) for i, item in enumerate(items)]


def _plain(state: State, hint: Any, name: str) -> Any:
    if hint is float and isinstance(state, int) and not isinstance(state, bool):
        return float(state)
    if hint is int and isinstance(state, bool):
        raise ValueError(f"{name}: expected int, got {state!r}")
    if typing.get_origin(hint) is None and isinstance(hint, type) and not isinstance(state, hint):
        raise ValueError(f"{name}: expected {hint.__name__}, got {state!r}")
    return state
