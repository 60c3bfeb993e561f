# -*- test-case-name: tests.test_multipart -*-
"""C{multipart/form-data} bodies (RFC 7578): read them into fields and write them back.

What C{Request.multipart_form} (L{twisted_mitm.http}) is made of. Fields are
C{(name, value)} byte pairs, in order, as mitmproxy has them. Writing a form over an
existing body keeps each part's own headers (its C{filename}, its Content-Type) for the
fields that are still there, so editing one field of a file upload leaves the files
intact; new fields get C{text/plain; charset=utf-8} as in mitmproxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_NAME = re.compile(rb';\s*name\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_NEW_PART_TYPE = b"text/plain; charset=utf-8"


@dataclass(frozen=True)
class Part:
    """One part of a form: its name, its raw header block and its body."""

    name: bytes
    head: bytes
    body: bytes


def boundary(content_type: str) -> str | None:
    """The C{boundary} parameter of a Content-Type value, unquoted; C{None} if absent."""
    match = _BOUNDARY.search(content_type)
    return (match[1] or match[2]) if match else None


def _delimiter(boundary: str) -> re.Pattern[bytes]:
    """A boundary line: at the start or after a line break, C{--} closes the body."""
    return re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("latin-1")) + rb"(--)?[ \t]*(?:\r?\n|\Z)"
    )


def read_parts(content_type: str, content: bytes) -> list[Part]:
    """The named parts of a multipart body, in order; parts without a name are skipped.

    @raise ValueError: if C{content_type} has no boundary.
    """
    boundary_value = boundary(content_type)
    if boundary_value is None:
        raise ValueError(f"no boundary in Content-Type {content_type!r}")
    parts = []
    lines = list(_delimiter(boundary_value).finditer(content))
    for opening, closing in zip(lines, lines[1:]):
        if opening[1]:
            break
        part = _read_part(content[opening.end() : closing.start()])
        if part is not None:
            parts.append(part)
    return parts


def _read_part(data: bytes) -> Part | None:
    head_end = _HEAD_END.search(data)
    if head_end is None:
        return None
    head = data[: head_end.start()]
    disposition = next(
        (line for line in head.splitlines() if line.lower().startswith(b"content-disposition:")),
        b"",
    )
    name = _NAME.search(disposition)
    if name is None:
        return None
    return Part(name[1] if name[1] is not None else name[2], head, data[head_end.end() :])


def decode_multipart(content_type: str | None, content: bytes) -> list[tuple[bytes, bytes]]:
    """The C{(name, value)} fields of a form body; empty without a usable boundary."""
    try:
        return [(part.name, part.body) for part in read_parts(content_type or "", content)]
    except ValueError:
        return []


def _new_head(name: bytes) -> bytes:
    quoted = name.replace(b'"', b"%22").replace(b"\r", b"%0D").replace(b"\n", b"%0A")
    return (
        b'Content-Disposition: form-data; name="' + quoted + b'"\r\nContent-Type: ' + _NEW_PART_TYPE
    )


def encode_multipart(
    content_type: str, fields: Iterable[tuple[bytes, bytes]], like: Iterable[Part] = ()
) -> bytes:
    """A form body of C{fields}, in the boundary of C{content_type}.

    The n-th field of a name reuses the header block of the n-th part of that name in
    C{like} (the body being replaced), so file names and part types survive an edit.

    @raise ValueError: if C{content_type} has no boundary, or a value holds a boundary line.
    """
    boundary_value = boundary(content_type)
    if boundary_value is None:
        raise ValueError(f"no boundary in Content-Type {content_type!r}")
    delimiter = b"--" + boundary_value.encode("latin-1")
    delimiter_line = _delimiter(boundary_value)
    old_heads: dict[bytes, list[bytes]] = {}
    for part in like:
        old_heads.setdefault(part.name, []).append(part.head)
    chunks = []
    for name, value in fields:
        if delimiter_line.search(value):
            raise ValueError(f"the value of field {name!r} contains the form's boundary")
        reusable = old_heads.get(name)
        head = reusable.pop(0) if reusable else _new_head(name)
        chunks.append(delimiter + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n")
    return b"".join(chunks) + delimiter + b"--\r\n"
