"""Tests for L{twisted_mitm.net.encoding}: every content coding, alone and stacked."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable
from typing import NamedTuple

import brotli  # type: ignore[import-untyped]
import zstandard
from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.net.encoding import decode, encode, is_supported

BODY = b"<html>" + b"A body that compresses, with some variety: 0123456789. " * 40 + b"</html>"


def _zstd_decompress(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()


class Reference(NamedTuple):
    """A coding with the reference library's own compressor and decompressor."""

    coding: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


REFERENCES = (
    Reference("identity", lambda data: data, lambda data: data),
    Reference("gzip", lambda data: gzip.compress(data, 9, mtime=1234), gzip.decompress),
    Reference("deflate", lambda data: zlib.compress(data, 9), zlib.decompress),
    Reference("br", lambda data: brotli.compress(data, quality=11), brotli.decompress),
    Reference("zstd", zstandard.ZstdCompressor(level=19).compress, _zstd_decompress),
)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _zstd_without_size(data: bytes) -> bytes:
    """A zstd frame whose header does not declare the content size (as streaming servers send)."""
    output = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(output, closefd=False) as writer:
        writer.write(data)
    return output.getvalue()


class RoundTripTests(SynchronousTestCase):
    """Each coding reads what its reference library writes, and the other way round."""

    def test_decodes_reference_output(self) -> None:
        """decode() undoes each coding as written by the reference compressor."""
        for ref in REFERENCES:
            with self.subTest(coding=ref.coding):
                self.assertEqual(decode(ref.compress(BODY), ref.coding), BODY)

    def test_reference_reads_our_output(self) -> None:
        """The reference decompressor reads what encode() writes, and it is compressed."""
        for ref in REFERENCES:
            with self.subTest(coding=ref.coding):
                encoded = encode(BODY, ref.coding)
                self.assertEqual(ref.decompress(encoded), BODY)
                if ref.coding != "identity":
                    self.assertLess(len(encoded), len(BODY))

    def test_empty_body(self) -> None:
        """An empty body decodes to an empty body under every coding."""
        for ref in REFERENCES:
            with self.subTest(coding=ref.coding):
                self.assertEqual(decode(b"", ref.coding), b"")
                self.assertEqual(ref.decompress(encode(b"", ref.coding)), b"")

    def test_names_are_case_and_space_insensitive(self) -> None:
        """Coding names compare case-insensitively, with surrounding spaces ignored."""
        self.assertEqual(decode(gzip.compress(BODY), " GZip "), BODY)
        self.assertEqual(decode(brotli.compress(BODY), "BR"), BODY)

    def test_aliases(self) -> None:
        """x-gzip is gzip (RFC 9110), none is identity, deflateraw is deflate (mitmproxy)."""
        self.assertEqual(decode(gzip.compress(BODY), "x-gzip"), BODY)
        self.assertEqual(decode(BODY, "none"), BODY)
        self.assertEqual(decode(_raw_deflate(BODY), "deflateraw"), BODY)


class StackedCodingTests(SynchronousTestCase):
    """A Content-Encoding listing several codings, in the order they were applied."""

    def test_decode_undoes_in_reverse_order(self) -> None:
        """C{gzip, br} is brotli over gzip: decode() removes br first, then gzip."""
        stacked = brotli.compress(gzip.compress(BODY))
        self.assertEqual(decode(stacked, "gzip, br"), BODY)

    def test_encode_applies_in_order(self) -> None:
        """encode() applies the codings left to right: the last one is outermost."""
        encoded = encode(BODY, "gzip, br")
        self.assertEqual(gzip.decompress(brotli.decompress(encoded)), BODY)

    def test_every_pair_round_trips(self) -> None:
        """Any two codings stacked decode back to the body, whatever the pair."""
        for outer in REFERENCES:
            for inner in REFERENCES:
                coding = f"{inner.coding}, {outer.coding}"
                with self.subTest(coding=coding):
                    stacked = outer.compress(inner.compress(BODY))
                    self.assertEqual(decode(stacked, coding), BODY)
                    self.assertEqual(inner.decompress(outer.decompress(encode(BODY, coding))), BODY)

    def test_empty_list_is_identity(self) -> None:
        """An empty or comma-only value applies no coding."""
        self.assertEqual(decode(BODY, ""), BODY)
        self.assertEqual(encode(BODY, " , "), BODY)


class ForeignShapesTests(SynchronousTestCase):
    """Shapes real servers send that a strict reading would refuse."""

    def test_raw_deflate(self) -> None:
        """deflate without the zlib wrapper is decoded too (as mitmproxy does)."""
        self.assertEqual(decode(_raw_deflate(BODY), "deflate"), BODY)

    def test_zlib_labelled_gzip(self) -> None:
        """zlib-wrapped data labelled gzip is decoded (zlib's header detection, as mitmproxy)."""
        self.assertEqual(decode(zlib.compress(BODY), "gzip"), BODY)

    def test_gzip_members(self) -> None:
        """Concatenated gzip members decode to their concatenation; trailing zero padding is ignored."""
        body = gzip.compress(b"first ") + gzip.compress(b"second") + b"\x00" * 8
        self.assertEqual(decode(body, "gzip"), b"first second")

    def test_zstd_frames(self) -> None:
        """Concatenated zstd frames, with or without a declared size, decode whole."""
        body = _zstd_without_size(BODY) + zstandard.ZstdCompressor().compress(b"tail")
        self.assertEqual(decode(body, "zstd"), BODY + b"tail")


class BadInputTests(SynchronousTestCase):
    """Corrupt bodies and unknown codings raise ValueError, never return something wrong."""

    def test_corrupt(self) -> None:
        """Bytes that are not the coding raise ValueError naming the coding."""
        for coding in ("gzip", "deflate", "br", "zstd"):
            with self.subTest(coding=coding):
                error = self.assertRaises(ValueError, decode, b"this is not compressed", coding)
                self.assertIn(coding, str(error))

    def test_truncated(self) -> None:
        """A body cut short is an error, not a shorter body."""
        for ref in REFERENCES[1:]:
            with self.subTest(coding=ref.coding):
                compressed = ref.compress(BODY)
                self.assertRaises(ValueError, decode, compressed[: len(compressed) // 2], ref.coding)
                self.assertRaises(ValueError, decode, compressed[:-1], ref.coding)

    def test_truncated_second_member(self) -> None:
        """A second gzip member cut short is an error too."""
        body = gzip.compress(b"first") + gzip.compress(BODY)[:-4]
        self.assertRaises(ValueError, decode, body, "gzip")

    def test_unknown_coding(self) -> None:
        """An unsupported coding raises ValueError naming it, alone or in a list."""
        for coding in ("compress", "gzip, compress", "utf-8"):
            with self.subTest(coding=coding):
                error = self.assertRaises(ValueError, decode, BODY, coding)
                self.assertIn("unsupported content encoding", str(error))
                self.assertRaises(ValueError, encode, BODY, coding)

    def test_bytes_only(self) -> None:
        """A str body is a TypeError: codings apply to bytes."""
        self.assertRaises(TypeError, decode, "text", "gzip")
        self.assertRaises(TypeError, encode, "text", "gzip")

    def test_is_supported(self) -> None:
        """is_supported() answers for one coding name."""
        for coding in ("gzip", "deflate", "br", "zstd", "identity", "X-GZIP"):
            self.assertTrue(is_supported(coding), coding)
        for coding in ("compress", "*", "gzip, br", ""):
            self.assertFalse(is_supported(coding), coding)


class WriteBackTests(SynchronousTestCase):
    """Writing back the body just read keeps the bytes that were sent."""

    def test_unchanged_body_keeps_original_bytes(self) -> None:
        """encode() of what decode() just returned gives back the server's own bytes."""
        for ref in REFERENCES[1:]:
            with self.subTest(coding=ref.coding):
                sent = ref.compress(BODY)
                self.assertNotEqual(encode(BODY + b"!", ref.coding), sent)
                decoded = decode(sent, ref.coding)
                self.assertEqual(encode(decoded, ref.coding), sent)

    def test_changed_body_is_encoded_anew(self) -> None:
        """A changed body is compressed again, and decodes to the change."""
        sent = gzip.compress(BODY, mtime=99)
        changed = decode(sent, "gzip").replace(b"variety", b"VARIETY")
        self.assertEqual(gzip.decompress(encode(changed, "gzip")), changed)

    def test_deterministic_gzip(self) -> None:
        """gzip output carries no timestamp: the same body gives the same bytes."""
        first = encode(b"one", "gzip")
        encode(b"two", "gzip")
        self.assertEqual(encode(b"one", "gzip"), first)
