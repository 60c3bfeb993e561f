"""Tests for L{twisted_mitm.utils.strutils}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.utils.strutils import (
    always_bytes,
    always_str,
    bytes_to_escaped_str,
    escape_control_characters,
    escaped_str_to_bytes,
    is_mostly_bin,
    is_xml,
)


class ControlCharacterTests(SynchronousTestCase):
    """L{escape_control_characters}."""

    def test_dots(self) -> None:
        """Control characters and DEL become dots; tabs and line breaks stay unless asked."""
        text = "a\x00b\x1b[31mc\x7f\td\r\ne\u00e9"
        self.assertEqual(escape_control_characters(text), "a.b.[31mc.\td\r\ne\u00e9")
        self.assertEqual(escape_control_characters(text, keep_spacing=False), "a.b.[31mc..d..e\u00e9")

    def test_wrong_type(self) -> None:
        """Bytes are refused."""
        self.assertRaises(ValueError, escape_control_characters, b"x")


class AlwaysTests(SynchronousTestCase):
    """L{always_bytes} and L{always_str}."""

    def test_always_bytes(self) -> None:
        """Bytes and None pass through; str is encoded with the given arguments."""
        self.assertEqual(always_bytes(b"\xff"), b"\xff")
        self.assertIsNone(always_bytes(None))
        self.assertEqual(always_bytes("é", "latin-1"), b"\xe9")
        self.assertEqual(always_bytes("\udcff", "utf-8", "surrogateescape"), b"\xff")

    def test_always_str(self) -> None:
        """Str and None pass through; bytes are decoded with the given arguments."""
        self.assertEqual(always_str("x"), "x")
        self.assertIsNone(always_str(None))
        self.assertEqual(always_str(b"\xc3\xa9", "utf-8"), "é")

    def test_wrong_type(self) -> None:
        """Anything but str, bytes or None is a TypeError."""
        self.assertRaises(TypeError, always_bytes, 42)
        self.assertRaises(TypeError, always_str, 42)


class EscapeTests(SynchronousTestCase):
    """L{bytes_to_escaped_str} and L{escaped_str_to_bytes}."""

    def test_escapes(self) -> None:
        """Control bytes, high bytes and backslashes are escaped Python-style."""
        self.assertEqual(bytes_to_escaped_str(b"a\x00\xff\\b"), "a\\x00\\xff\\\\b")
        self.assertEqual(bytes_to_escaped_str(b"\t\r\n"), "\\t\\r\\n")
        self.assertEqual(bytes_to_escaped_str(b"\x7f"), "\\x7f")

    def test_keep_spacing(self) -> None:
        """With keep_spacing, tabs and line breaks are left as they are."""
        self.assertEqual(bytes_to_escaped_str(b"a\tb\r\n\x01", keep_spacing=True), "a\tb\r\n\\x01")

    def test_quotes(self) -> None:
        """Double quotes are never escaped, single quotes only on request."""
        self.assertEqual(bytes_to_escaped_str(b"'\""), "'\"")
        self.assertEqual(bytes_to_escaped_str(b"'\"", escape_single_quotes=True), "\\'\"")

    def test_matches_python_literal(self) -> None:
        """Quoted in single quotes, the result evaluates back to the same bytes."""
        data = bytes(range(256))
        literal = "b'" + bytes_to_escaped_str(data, escape_single_quotes=True) + "'"
        self.assertEqual(eval(literal), data)

    def test_round_trip(self) -> None:
        """escaped_str_to_bytes inverts bytes_to_escaped_str for every byte value."""
        data = bytes(range(256)) + b"'\\"
        for keep_spacing in (False, True):
            self.assertEqual(escaped_str_to_bytes(bytes_to_escaped_str(data, keep_spacing)), data)

    def test_unescape_non_ascii(self) -> None:
        """Characters outside ASCII become their UTF-8 bytes."""
        self.assertEqual(escaped_str_to_bytes("é\\x00"), b"\xc3\xa9\x00")

    def test_invalid(self) -> None:
        """Wrong types and broken escapes raise ValueError."""
        self.assertRaises(ValueError, bytes_to_escaped_str, "text")
        self.assertRaises(ValueError, escaped_str_to_bytes, b"bytes")
        self.assertRaises(ValueError, escaped_str_to_bytes, "\\x1")


class GuessTests(SynchronousTestCase):
    """L{is_mostly_bin} and L{is_xml}."""

    def test_text_is_not_binary(self) -> None:
        """Empty data, ASCII text and UTF-8 text are not binary."""
        self.assertFalse(is_mostly_bin(b""))
        self.assertFalse(is_mostly_bin(b"hello world\r\n"))
        self.assertFalse(is_mostly_bin("ÄÖÜ äöü ß €".encode() * 20))

    def test_binary(self) -> None:
        """Control bytes and invalid UTF-8 are binary."""
        self.assertTrue(is_mostly_bin(b"\x00\x01\x02\x03" * 10))
        self.assertTrue(is_mostly_bin(b"\xff\xfe\xfd\xfc" * 10))

    def test_cut_keeps_utf8_whole(self) -> None:
        """The 100-byte sample is not cut inside a UTF-8 sequence."""
        self.assertFalse(is_mostly_bin(b"a" + "€".encode() * 60))

    def test_is_xml(self) -> None:
        """Data is XML-like when its first non-blank byte is '<'."""
        self.assertTrue(is_xml(b" \n\t<root/>"))
        self.assertFalse(is_xml(b"text <b>"))
        self.assertFalse(is_xml(b""))
