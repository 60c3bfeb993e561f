"""Tests for L{twisted_mitm.net.http.multipart}."""

from __future__ import annotations

import email.parser
import email.policy

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.net.http.multipart import (
    Part,
    boundary,
    decode_multipart,
    encode_multipart,
    read_parts,
)


def parse_with_stdlib(content_type: str, body: bytes) -> list[tuple[str | None, bytes]]:
    """The form as the standard library's MIME parser reads it: an independent reader."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return [
        (part.get_param("name", header="content-disposition"), part.get_payload(decode=True))
        for part in message.iter_parts()  # type: ignore[attr-defined]
    ]


class BoundaryTests(SynchronousTestCase):
    """L{boundary}."""

    def test_forms(self) -> None:
        """The boundary parameter is found plain or quoted, in any case, among other parameters."""
        self.assertEqual(boundary("multipart/form-data; boundary=abc"), "abc")
        self.assertEqual(boundary('multipart/form-data; charset=x; BOUNDARY="a b:c"'), "a b:c")
        self.assertIsNone(boundary("multipart/form-data"))


class ReadTests(SynchronousTestCase):
    """L{read_parts} and L{decode_multipart}."""

    def test_lf_only_and_preamble(self) -> None:
        """A preamble is skipped and bare LF line breaks are accepted; the epilogue is ignored."""
        body = b"preamble\n--b\nContent-Disposition: form-data; name=a\n\nvalue\n--b--\nepilogue"
        self.assertEqual(decode_multipart("multipart/form-data; boundary=b", body), [(b"a", b"value")])

    def test_unnamed_parts_skipped(self) -> None:
        """Parts without a name, or without a header block, are left out."""
        body = (
            b"--b\r\nContent-Type: text/plain\r\n\r\nno name\r\n"
            b"--b\r\nno blank line\r\n"
            b'--b\r\nContent-Disposition: form-data; name="kept"\r\n\r\nyes\r\n--b--\r\n'
        )
        self.assertEqual(decode_multipart("multipart/form-data; boundary=b", body), [(b"kept", b"yes")])

    def test_filename_is_not_the_name(self) -> None:
        """The field name is C{name=}, not the C{filename=} before it."""
        body = b'--b\r\nContent-Disposition: form-data; filename="f.txt"; name="upload"\r\n\r\nx\r\n--b--\r\n'
        [part] = read_parts("multipart/form-data; boundary=b", body)
        self.assertEqual(part, Part(b"upload", b'Content-Disposition: form-data; filename="f.txt"; name="upload"', b"x"))

    def test_without_boundary(self) -> None:
        """Without a boundary read_parts raises and decode_multipart gives no fields."""
        self.assertRaises(ValueError, read_parts, "multipart/form-data", b"--b\r\n")
        self.assertEqual(decode_multipart(None, b"--b\r\n"), [])

    def test_unterminated(self) -> None:
        """A body cut before its closing boundary still yields the parts that are whole."""
        body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-da'
        self.assertEqual(decode_multipart("multipart/form-data; boundary=b", body), [(b"a", b"1")])


class WriteTests(SynchronousTestCase):
    """L{encode_multipart}."""

    content_type = "multipart/form-data; boundary=----sep"

    def test_stdlib_reads_what_we_write(self) -> None:
        """An independent MIME parser reads the fields we write, binary values included."""
        fields = [(b"a", b"1"), (b"b", b"line\r\nbreak"), (b"a", b"\x00\xff binary")]
        body = encode_multipart(self.content_type, fields)
        self.assertEqual(
            parse_with_stdlib(self.content_type, body),
            [("a", b"1"), ("b", b"line\r\nbreak"), ("a", b"\x00\xff binary")],
        )
        self.assertEqual(decode_multipart(self.content_type, body), fields)

    def test_reuses_part_heads_by_name_and_order(self) -> None:
        """The n-th field of a name takes the n-th old part of that name's headers."""
        like = [Part(b"f", b"Content-Disposition: form-data; name=\"f\"; filename=\"one\"", b""),
                Part(b"f", b"Content-Disposition: form-data; name=\"f\"; filename=\"two\"", b"")]
        body = encode_multipart(self.content_type, [(b"f", b"A"), (b"f", b"B"), (b"f", b"C")], like)
        heads = [part.head for part in read_parts(self.content_type, body)]
        self.assertEqual(heads[:2], [like[0].head, like[1].head])
        self.assertEqual(heads[2], b'Content-Disposition: form-data; name="f"\r\nContent-Type: text/plain; charset=utf-8')

    def test_name_cannot_break_the_header(self) -> None:
        """Quotes and line breaks in a name are percent-escaped, as browsers do."""
        body = encode_multipart(self.content_type, [(b'a"\r\nX-Evil: 1', b"v")])
        self.assertNotIn(b"\r\nX-Evil", body)
        self.assertEqual(decode_multipart(self.content_type, body), [(b"a%22%0D%0AX-Evil: 1", b"v")])

    def test_boundary_in_value(self) -> None:
        """A value holding a boundary line, at its start, middle or end, raises ValueError."""
        for value in (b"----sep\r\nx", b"x\r\n----sep\r\ny", b"x\n----sep--", b"x\r\n----sep"):
            with self.subTest(value=value):
                self.assertRaises(ValueError, encode_multipart, "multipart/form-data; boundary=--sep", [(b"a", value)])
        self.assertEqual(
            decode_multipart(self.content_type, encode_multipart(self.content_type, [(b"a", b"x ------sep y")])),
            [(b"a", b"x ------sep y")],
        )

    def test_empty_form(self) -> None:
        """No fields give just the closing boundary."""
        self.assertEqual(encode_multipart(self.content_type, []), b"------sep--\r\n")
