# -*- test-case-name: tests.test_http -*-
"""Ordered multi-dicts: the shape of headers, query strings, cookies and forms.

A multi-dict is a mapping whose raw data is a tuple of C{(key, value)} C{fields}, in
order, duplicates allowed. Subclasses choose how keys compare (C{_kconv}) and how
several values of one key read as one (C{_reduce_values}). L{MultiDictView} stores
nothing itself: it reads and writes its fields through a getter/setter pair, which is how
C{request.query} edits C{request.path}. Used by L{twisted_mitm.http}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

Fields = tuple[tuple[Any, Any], ...]

_MISSING = object()


class _MultiDict(MutableMapping[Any, Any]):
    """Mapping behaviour shared by L{MultiDict} and L{MultiDictView}."""

    fields: Fields

    @staticmethod
    def _kconv(key: Any) -> Any:
        """Canonical form of a key for comparisons; the key itself by default."""
        return key

    @staticmethod
    def _reduce_values(values: list[Any]) -> Any:
        """The single value C{md[key]} returns for several; the first by default."""
        return values[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}[{', '.join(repr(f) for f in self.fields)}]"

    def __getitem__(self, key: Any) -> Any:
        values = self.get_all(key)
        if not values:
            raise KeyError(key)
        return self._reduce_values(values)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.set_all(key, [value])

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        canonical = self._kconv(key)
        self.fields = tuple(f for f in self.fields if self._kconv(f[0]) != canonical)

    def __iter__(self) -> Iterator[Any]:
        seen = set()
        for key, _ in self.fields:
            canonical = self._kconv(key)
            if canonical not in seen:
                seen.add(canonical)
                yield key

    def __len__(self) -> int:
        return len({self._kconv(key) for key, _ in self.fields})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _MultiDict):
            return self.fields == other.fields
        return False

    __hash__ = None  # type: ignore[assignment]

    def get_all(self, key: Any) -> list[Any]:
        """All values of C{key}, in order; an empty list if there are none."""
        canonical = self._kconv(key)
        return [v for k, v in self.fields if self._kconv(k) == canonical]

    def set_all(self, key: Any, values: Iterable[Any]) -> None:
        """Replace the values of C{key}.

        Existing fields of that key take the new values in place, in order; surplus old
        fields are removed and surplus new values are appended at the end.
        """
        canonical = self._kconv(key)
        new_values = iter(values)
        fields = []
        for field in self.fields:
            if self._kconv(field[0]) != canonical:
                fields.append(field)
            elif (value := next(new_values, _MISSING)) is not _MISSING:
                fields.append((field[0], value))
        fields.extend((key, value) for value in new_values)
        self.fields = tuple(fields)

    def add(self, key: Any, value: Any) -> None:
        """Append a field, keeping existing values of C{key}."""
        self.insert(len(self.fields), key, value)

    def insert(self, index: int, key: Any, value: Any) -> None:
        """Insert a field at position C{index} of C{fields}."""
        fields = list(self.fields)
        fields.insert(index, (key, value))
        self.fields = tuple(fields)

    def keys(self, multi: bool = False) -> Iterator[Any]:  # type: ignore[override]
        """Keys; with C{multi}, one per field (duplicates included)."""
        return (k for k, _ in self.items(multi))

    def values(self, multi: bool = False) -> Iterator[Any]:  # type: ignore[override]
        """Values; with C{multi} all of them, else the reduced value per key."""
        return (v for _, v in self.items(multi))

    def items(self, multi: bool = False) -> Iterable[tuple[Any, Any]]:  # type: ignore[override]
        """C{(key, value)} pairs; with C{multi}, every field."""
        if multi:
            return self.fields
        return super().items()


class MultiDict(_MultiDict):
    """A multi-dict holding its own fields."""

    def __init__(self, fields: Iterable[Iterable[Any]] = ()) -> None:
        self.fields = tuple(tuple(field) for field in fields)

    def copy(self) -> MultiDict:
        """A shallow copy of the same type."""
        return type(self)(self.fields)


class MultiDictView(_MultiDict):
    """A multi-dict over computed fields: reads call C{getter}, writes call C{setter}."""

    def __init__(self, getter: Callable[[], Fields], setter: Callable[[Fields], None]) -> None:
        self._getter = getter
        self._setter = setter

    @property  # type: ignore[override]
    def fields(self) -> Fields:
        """The fields as the owner computes them now."""
        return self._getter()

    @fields.setter
    def fields(self, value: Fields) -> None:
        self._setter(value)

    def copy(self) -> MultiDict:
        """A detached L{MultiDict} with the current fields."""
        return MultiDict(self.fields)
