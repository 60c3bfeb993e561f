# -*- test-case-name: tests.test_serializable -*-
"""Tests for L{twisted_mitm.coretypes.serializable}: states of dataclasses by their hints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.coretypes.serializable import Serializable, SerializableDataclass


@dataclass
class Part(SerializableDataclass):
    name: str
    size: float = 0.0


@dataclass
class Record(SerializableDataclass):
    id: str
    address: tuple[str, int] | None
    parts: Sequence[Part] = ()
    tags: list[bytes] = field(default_factory=list)
    kind: Literal["tcp", "udp"] = "tcp"
    count: int = 0
    flag: bool = False
    main: Part | None = None


class Opaque(Serializable):
    """A Serializable whose state is a single str."""

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def from_state(cls, state: str) -> Opaque:
        return cls(state)

    def get_state(self) -> str:
        return self.text

    def set_state(self, state: str) -> None:
        self.text = state


class DataclassStateTests(SynchronousTestCase):
    """A dataclass's state is its fields, converted by type hint, checked when loaded."""

    def record(self) -> Record:
        return Record("r1", ("example.com", 80), [Part("a", 1.5)], [b"x"], "udp", 3, True, Part("m"))

    def test_get_state(self) -> None:
        """Nested records become dicts, sequences lists, tuples stay tuples; fields in order."""
        state = self.record().get_state()
        self.assertEqual(list(state), ["id", "address", "parts", "tags", "kind", "count", "flag", "main"])
        self.assertEqual(state["address"], ("example.com", 80))
        self.assertEqual(state["parts"], [{"name": "a", "size": 1.5}])
        self.assertEqual(state["main"], {"name": "m", "size": 0.0})

    def test_round_trip_through_lists(self) -> None:
        """A state whose tuples became lists (as in a file) loads back to equal values."""
        state = self.record().get_state()
        state["address"] = list(state["address"])
        self.assertEqual(Record.from_state(state), self.record())

    def test_int_for_float_and_extra_address_items(self) -> None:
        """An int is accepted for a float; an address may carry extra ints (IPv6 scope)."""
        record = Record.from_state({
            "id": "r", "address": ["::1", 80, 0, 3], "parts": [{"name": "p", "size": 2}],
            "tags": [], "kind": "tcp", "count": 0, "flag": False, "main": None,
        })
        self.assertEqual(record.address, ("::1", 80, 0, 3))
        self.assertEqual(type(record.parts[0].size), float)

    def test_set_state(self) -> None:
        """set_state replaces every field of an existing object."""
        record = Record("old", None)
        record.set_state(self.record().get_state())
        self.assertEqual(record, self.record())

    def test_refusals(self) -> None:
        """Missing, unknown and ill-typed fields raise ValueError naming the field."""
        cases = [
            ({"id": "r"}, "Record state has no 'address'"),
            ({**self.record().get_state(), "extra": 1}, "unknown fields: extra"),
            ({**self.record().get_state(), "count": True}, "count: expected int"),
            ({**self.record().get_state(), "count": "3"}, "count: expected int"),
            ({**self.record().get_state(), "kind": "sctp"}, "kind: 'sctp' is not one of"),
            ({**self.record().get_state(), "id": None}, "id must not be None"),
            ({**self.record().get_state(), "address": ["host"]}, "address: expected 2 items"),
            ({**self.record().get_state(), "tags": b"x"}, "tags: expected a list"),
        ]
        for state, expected in cases:
            with self.assertRaises(ValueError) as caught:
                Record.from_state(dict(state))
            self.assertIn(expected, str(caught.exception))


class CopyTests(SynchronousTestCase):
    """Serializable.copy() goes through the state."""

    def test_copy_with_id(self) -> None:
        """A copy is equal but for a fresh id."""
        original = Record("r1", None, [Part("a")])
        duplicate = original.copy()
        self.assertNotEqual(duplicate.id, original.id)
        self.assertEqual(duplicate.parts, original.parts)
        self.assertIsNot(duplicate.parts[0], original.parts[0])

    def test_copy_without_id(self) -> None:
        """An object whose state is not a dict is copied as it is."""
        self.assertEqual(Opaque("text").copy().text, "text")
