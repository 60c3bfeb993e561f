# -*- test-case-name: tests.test_tnetstring -*-
"""Typed netstrings in mitmproxy's dialect: the encoding of flow files.

Every value is C{LENGTH:PAYLOAD} followed by one tag byte naming its type:

    ,  bytes          ;  str (UTF-8)      #  int        ^  float (Python repr)
    !  bool (true/false)                  ~  None (empty payload)
    ]  list: the items one after another  }  dict: key, value, key, value...

The C{;} tag is mitmproxy's addition to the original format, so text and bytes stay
apart. Tuples are written as lists. Dict items are written last first, as mitmproxy does
(so files are byte-identical), and read back into their first order (mitmproxy keeps
them reversed, so its dicts change order each time a file is read and written). L{dump} writes a value's pieces without joining
them, so a large body is not copied on its way to the file; L{load} reads exactly one
value from a file, so a file of many values is read one value at a time. A body kept on
disk (L{SpooledBody}) is written as bytes, copied from its file a piece at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, Union

from twisted_mitm.spool import SpooledBody

TSerializable = Union[None, bool, int, float, bytes, SpooledBody, str, list, tuple, dict]
Piece = Union[bytes, SpooledBody]

# A length prefix is at most this many digits (a terabyte); more means the data is not ours.
_MAX_LENGTH_DIGITS = 12
_SCALAR_TAGS = {ord(","), ord(";"), ord("#"), ord("^"), ord("!"), ord("~")}


class EndOfInput(ValueError):
    """L{load} found the file at its end before a value started."""


def dumps(value: TSerializable) -> bytes:
    """Encode C{value}.

    @raise ValueError: for a value (or an item inside it) of another type.
    """
    return b"".join(piece.read() if isinstance(piece, SpooledBody) else piece for piece in _pieces(value))


def dump(value: TSerializable, file: BinaryIO) -> None:
    """Encode C{value} and write it to C{file}.

    @raise ValueError: for a value (or an item inside it) of another type; nothing is
        written then.
    """
    for piece in _pieces(value):
        if isinstance(piece, SpooledBody):
            file.writelines(piece.chunks())
        else:
            file.write(piece)


def _pieces(value: TSerializable) -> list[Piece]:
    pieces: list[Piece] = []
    _encode(value, pieces)
    return pieces


def _encode(value: TSerializable, pieces: list[Piece]) -> int:
    """Append the encoding of C{value} to C{pieces}; return its length in bytes."""
    if isinstance(value, (list, tuple, dict)):
        return _encode_container(value, pieces)
    if isinstance(value, SpooledBody):
        prefix = b"%d:" % value.size
        pieces += (prefix, value, b",")
        return len(prefix) + value.size + 1
    tag, payload = _scalar(value)
    pieces += (b"%d:" % len(payload), payload, tag)
    return len(pieces[-3]) + len(payload) + 1


def _scalar(value: TSerializable) -> tuple[bytes, bytes]:
    """The tag and payload of a value that is not a container."""
    if value is None:
        return b"~", b""
    if isinstance(value, bool):
        return b"!", b"true" if value else b"false"
    if isinstance(value, int):
        return b"#", b"%d" % value
    if isinstance(value, float):
        return b"^", repr(value).encode("ascii")
    if isinstance(value, bytes):
        return b",", value
    if isinstance(value, str):
        return b";", value.encode("utf-8")
    raise ValueError(f"cannot encode a {type(value).__name__}: {value!r}")


def _encode_container(value: list[Any] | tuple[Any, ...] | dict[Any, Any], pieces: list[Piece]) -> int:
    prefix_index = len(pieces)
    pieces.append(b"")
    if isinstance(value, dict):
        # Last item first, as mitmproxy writes them, so that the files are byte-identical.
        size = sum(_encode(k, pieces) + _encode(v, pieces) for k, v in reversed(value.items()))
        tag = b"}"
    else:
        size = sum(_encode(item, pieces) for item in value)
        tag = b"]"
    prefix = pieces[prefix_index] = b"%d:" % size
    pieces.append(tag)
    return len(prefix) + size + 1


def loads(data: bytes) -> TSerializable:
    """Decode one value; C{data} must hold exactly that value.

    @raise ValueError: for malformed data or bytes after the value.
    """
    view = memoryview(data)
    value, end = _decode(view, 0)
    if end != len(view):
        raise ValueError(f"not a tnetstring: {len(view) - end} bytes after the value")
    return value


def load(file: BinaryIO) -> TSerializable:
    """Read one value from C{file}, and not a byte more.

    @raise EndOfInput: if C{file} is at its end.
    @raise ValueError: for malformed or truncated data.
    """
    digits = b""
    byte = file.read(1)
    if not byte:
        raise EndOfInput("not a tnetstring: end of input")
    while byte.isdigit():
        digits += byte
        if len(digits) > _MAX_LENGTH_DIGITS:
            raise ValueError("not a tnetstring: absurdly large length prefix")
        byte = file.read(1)
    if byte != b":" or not digits:
        raise ValueError(f"not a tnetstring: bad length prefix {digits + byte!r}")
    length = int(digits)
    payload = file.read(length)
    tag = file.read(1)
    if len(payload) < length or not tag:
        raise ValueError(f"not a tnetstring: truncated ({len(payload)} of {length} bytes)")
    return _parse(tag[0], memoryview(payload))


def _decode(view: memoryview, start: int) -> tuple[TSerializable, int]:
    """Decode the value starting at C{start}; return it and where the next one starts."""
    colon = start
    while colon < len(view) and colon - start <= _MAX_LENGTH_DIGITS and 0x30 <= view[colon] <= 0x39:
        colon += 1
    if colon == start or colon >= len(view) or view[colon] != ord(":"):
        raise ValueError(f"not a tnetstring: bad length prefix at byte {start}")
    length = int(bytes(view[start:colon]))
    payload_start = colon + 1
    tag_index = payload_start + length
    if tag_index >= len(view):
        raise ValueError(f"not a tnetstring: truncated value at byte {start}")
    return _parse(view[tag_index], view[payload_start:tag_index]), tag_index + 1


def _parse(tag: int, payload: memoryview) -> TSerializable:
    if tag in _SCALAR_TAGS:
        return _parse_scalar(tag, bytes(payload))
    if tag == ord("]"):
        return list(_items(payload))
    if tag == ord("}"):
        return _dict(list(_items(payload)))
    raise ValueError(f"not a tnetstring: unknown type tag {bytes([tag])!r}")


def _items(payload: memoryview) -> Iterator[TSerializable]:
    """The values of a list or dict payload, in order."""
    position = 0
    while position < len(payload):
        item, position = _decode(payload, position)
        yield item


def _dict(items: list[TSerializable]) -> dict[Any, TSerializable]:
    """A dict from alternating keys and values, written last first: its items in their order."""
    if len(items) % 2:
        raise ValueError("not a tnetstring: dict key without a value")
    try:
        return dict(reversed(list(zip(items[::2], items[1::2]))))
    except TypeError:
        raise ValueError("not a tnetstring: unhashable dict key") from None


def _parse_scalar(tag: int, payload: bytes) -> TSerializable:
    if tag == ord(","):
        return payload
    if tag == ord(";"):
        return payload.decode("utf-8")
    if tag == ord("#"):
        return _number(int, payload)
    if tag == ord("^"):
        return _number(float, payload)
    if tag == ord("!"):
        if payload in (b"true", b"false"):
            return payload == b"true"
        raise ValueError(f"not a tnetstring: bad boolean {payload[:20]!r}")
    if payload:
        raise ValueError(f"not a tnetstring: null with a payload {payload[:20]!r}")
    return None


def _number(kind: type[int] | type[float], payload: bytes) -> int | float:
    try:
        return kind(payload)
    except ValueError:
        raise ValueError(f"not a tnetstring: bad {kind.__name__} {payload[:20]!r}") from None
