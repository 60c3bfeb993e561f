# -*- test-case-name: tests.test_strutils -*-
"""String/bytes helpers that scripts import under mitmproxy's names.

Pure functions used by the flow models (L{twisted_mitm.http}) and by addons that print
bodies.
"""

from __future__ import annotations

import codecs


def always_bytes(str_or_bytes: str | bytes | None, *encode_args: str) -> bytes | None:
    """Return bytes unchanged, encode a str with C{encode_args}, pass C{None} through.

    @raise TypeError: for any other type.
    """
    if str_or_bytes is None or isinstance(str_or_bytes, bytes):
        return str_or_bytes
    if isinstance(str_or_bytes, str):
        return str_or_bytes.encode(*encode_args)
    raise TypeError(f"Expected str or bytes, but got {type(str_or_bytes).__name__}.")


def always_str(str_or_bytes: str | bytes | None, *decode_args: str) -> str | None:
    """Return a str unchanged, decode bytes with C{decode_args}, pass C{None} through.

    @raise TypeError: for any other type.
    """
    if str_or_bytes is None or isinstance(str_or_bytes, str):
        return str_or_bytes
    if isinstance(str_or_bytes, bytes):
        return str_or_bytes.decode(*decode_args)
    raise TypeError(f"Expected str or bytes, but got {type(str_or_bytes).__name__}.")


# Control characters (C0 and DEL) shown as ".", as mitmproxy does; the second table keeps
# tabs and line breaks.
_CONTROL_TO_DOT = str.maketrans({code: "." for code in (*range(32), 127)})
_CONTROL_TO_DOT_KEEP_SPACING = str.maketrans(
    {code: "." for code in (*range(32), 127) if chr(code) not in "\t\n\r"}
)


def escape_control_characters(text: str, keep_spacing: bool = True) -> str:
    """Replace control characters in C{text} with C{"."}, so it prints as one harmless line.

    @param keep_spacing: leave tabs, newlines and carriage returns as they are.
    @raise ValueError: if C{text} is not a str.
    """
    if not isinstance(text, str):
        raise ValueError(f"text type must be str, but is {type(text).__name__}")
    return text.translate(_CONTROL_TO_DOT_KEEP_SPACING if keep_spacing else _CONTROL_TO_DOT)


def _escape_table(keep_spacing: bool, escape_single_quotes: bool) -> tuple[str, ...]:
    """Build the byte -> text table used by L{bytes_to_escaped_str}."""
    table = [chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in range(256)]
    table[ord("\\")] = "\\\\"
    if escape_single_quotes:
        table[ord("'")] = "\\'"
    for char, escape in (("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        table[ord(char)] = char if keep_spacing else escape
    return tuple(table)


_ESCAPE_TABLES = {
    (keep, quotes): _escape_table(keep, quotes)
    for keep in (False, True)
    for quotes in (False, True)
}


def bytes_to_escaped_str(
    data: bytes, keep_spacing: bool = False, escape_single_quotes: bool = False
) -> str:
    """Render bytes as printable text with Python-style escapes (C{\\x00}, C{\\n}, C{\\\\}).

    Double quotes are never escaped and single quotes only on request, so
    C{"'" + bytes_to_escaped_str(b, escape_single_quotes=True) + "'"} is a Python literal.

    @param keep_spacing: leave tabs, newlines and carriage returns unescaped.
    @raise ValueError: if C{data} is not bytes.
    """
    if not isinstance(data, bytes):
        raise ValueError(f"data must be bytes, but is {data.__class__.__name__}")
    table = _ESCAPE_TABLES[(keep_spacing, escape_single_quotes)]
    return "".join(table[b] for b in data)


def escaped_str_to_bytes(data: str) -> bytes:
    """Invert L{bytes_to_escaped_str}: turn Python byte-string escapes back into bytes.

    Characters outside ASCII are taken as UTF-8.

    @raise ValueError: if C{data} is not a str or holds an invalid escape sequence.
    """
    if not isinstance(data, str):
        raise ValueError(f"data must be str, but is {data.__class__.__name__}")
    # escape_decode is the bytes counterpart of the unicode_escape codec.
    return codecs.escape_decode(data.encode("utf-8"))[0]  # type: ignore[attr-defined]


def _head(data: bytes, limit: int = 100) -> bytes:
    """Cut C{data} to about C{limit} bytes without splitting a UTF-8 sequence."""
    for cut in range(limit, limit + 4):
        if cut >= len(data) or data[cut] >> 6 != 0b10:
            return data[:cut]
    return data[:limit]


def is_mostly_bin(data: bytes) -> bool:
    """Guess whether C{data} is binary rather than (ASCII or UTF-8) text.

    Looks at the first ~100 bytes: mostly printable ASCII is text, and so is valid UTF-8
    with few control characters.
    """
    if not data:
        return False
    head = _head(data)
    low = sum(b < 9 or 13 < b < 32 for b in head)
    high = sum(b > 126 for b in head)
    printable = len(head) - low - high
    if printable / len(head) > 0.7:
        return False
    if (printable + high) / len(head) > 0.95:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False
    return True


def is_xml(data: bytes) -> bool:
    """C{True} if the first non-whitespace byte of C{data} is C{<}."""
    stripped = data.lstrip(b" \t\n")
    return stripped[:1] == b"<"
