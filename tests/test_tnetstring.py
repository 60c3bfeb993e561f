# -*- test-case-name: tests.test_tnetstring -*-
"""Tests for L{twisted_mitm.io.tnetstring}: mitmproxy's typed netstrings."""

from __future__ import annotations

import io

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.io import tnetstring

# (value, its encoding): what mitmproxy 12's tnetstring module writes for each.
ENCODINGS: list[tuple[tnetstring.TSerializable, bytes]] = [
    (None, b"0:~"),
    (True, b"4:true!"),
    (False, b"5:false!"),
    (0, b"1:0#"),
    (-5, b"2:-5#"),
    (2**70, b"22:1180591620717411303424#"),
    (1.5, b"3:1.5^"),
    (-0.1, b"4:-0.1^"),
    (b"", b"0:,"),
    (b"abc", b"3:abc,"),
    (b"1:x,]:}\x00\xff", b"9:1:x,]:}\x00\xff,"),
    ("", b"0:;"),
    ("hé ✓", b"7:h\xc3\xa9 \xe2\x9c\x93;"),
    ([], b"0:]"),
    ([1, [2, b"x"]], b"15:1:1#8:1:2#1:x,]]"),
    ({}, b"0:}"),
    ({"a": {"b": [None]}}, b"18:1:a;10:1:b;3:0:~]}}"),
    ({b"bytes key": 1, 2: "int key"}, b"30:1:2#7:int key;9:bytes key,1:1#}"),
]


class EncodingTests(SynchronousTestCase):
    """Values encode as mitmproxy encodes them, and decode back."""

    def test_table(self) -> None:
        """Each value of the table encodes to mitmproxy's bytes and decodes to itself."""
        for value, encoded in ENCODINGS:
            self.assertEqual(tnetstring.dumps(value), encoded, value)
            self.assertEqual(tnetstring.loads(encoded), value, encoded)

    def test_bool_is_not_int(self) -> None:
        """True and 1 keep their types both ways."""
        self.assertIs(tnetstring.loads(tnetstring.dumps(True)), True)
        self.assertEqual(type(tnetstring.loads(tnetstring.dumps(1))), int)

    def test_str_and_bytes_stay_apart(self) -> None:
        """A str comes back as str and bytes as bytes (the ';' tag)."""
        self.assertEqual(tnetstring.loads(tnetstring.dumps(["x", b"x"])), ["x", b"x"])

    def test_dict_order(self) -> None:
        """Dict items are written last first, as mitmproxy writes them, and read back in their order."""
        value = {"first": 1, "second": 2, "third": 3}
        self.assertEqual(tnetstring.dumps(value), b"37:5:third;1:3#6:second;1:2#5:first;1:1#}")
        self.assertEqual(list(tnetstring.loads(tnetstring.dumps(value))), ["first", "second", "third"])

    def test_tuples_are_lists(self) -> None:
        """Tuples are written as lists (as mitmproxy does)."""
        self.assertEqual(tnetstring.dumps((1, (2,))), tnetstring.dumps([1, [2]]))
        self.assertEqual(tnetstring.loads(tnetstring.dumps((1, (2,)))), [1, [2]])

    def test_float_round_trip(self) -> None:
        """Floats keep every digit, and infinities survive."""
        for value in (0.1 + 0.2, 1e300, -2.5e-300, float("inf"), float("-inf")):
            self.assertEqual(tnetstring.loads(tnetstring.dumps(value)), value)

    def test_deep_nesting(self) -> None:
        """Nested containers keep their shape and their length prefixes add up."""
        value: list[object] = [b"leaf"]
        for depth in range(50):
            value = [depth, value, {"depth": depth}]
        self.assertEqual(tnetstring.loads(tnetstring.dumps(value)), value)

    def test_large_bytes(self) -> None:
        """A body of a few MiB round-trips byte for byte."""
        body = bytes(range(256)) * 8192
        self.assertEqual(tnetstring.loads(tnetstring.dumps({"content": body})), {"content": body})

    def test_unsupported_type(self) -> None:
        """A value that is not plain data is refused with ValueError, naming its type."""
        for value in (object(), {1.5j}, [1, {"x": object()}]):
            with self.assertRaises(ValueError) as caught:
                tnetstring.dumps(value)  # type: ignore[arg-type]
            self.assertIn("cannot encode", str(caught.exception))

    def test_dump_writes_nothing_on_error(self) -> None:
        """dump() encodes first: a value it cannot encode leaves the file untouched."""
        file = io.BytesIO()
        with self.assertRaises(ValueError):
            tnetstring.dump([b"fine", object()], file)  # type: ignore[list-item]
        self.assertEqual(file.getvalue(), b"")


class MalformedTests(SynchronousTestCase):
    """Malformed input raises ValueError with what is wrong, never another exception."""

    CASES = [
        (b"", "bad length prefix"),
        (b"3", "bad length prefix"),
        (b"x:abc,", "bad length prefix"),
        (b"5:abc,", "truncated"),
        (b"3:abc", "truncated"),
        (b"3:abc?", "unknown type tag"),
        (b"2:ab#", "bad int"),
        (b"3:1.x^", "bad float"),
        (b"3:yes!", "bad boolean"),
        (b"1:x~", "null with a payload"),
        (b"4:1:a;}", "dict key without a value"),
        (b"7:0:]1:1#}", "unhashable dict key"),
        (b"2:\xff\xfe;", "utf-8"),
        (b"1:1#junk", "bytes after the value"),
        (b"9999999999999:x,", "truncated"),
    ]

    def test_loads(self) -> None:
        """Each malformed input names its problem."""
        for data, problem in self.CASES:
            with self.assertRaises(ValueError, msg=data) as caught:
                tnetstring.loads(data)
            self.assertIn(problem, str(caught.exception), data)


class FileTests(SynchronousTestCase):
    """load() reads one value at a time from a file."""

    def test_one_value_at_a_time(self) -> None:
        """Consecutive values come back in order, and the end of the file is EndOfInput."""
        file = io.BytesIO(b"".join(tnetstring.dumps(v) for v in ({"a": 1}, [b"b"], None)))
        self.assertEqual(tnetstring.load(file), {"a": 1})
        self.assertEqual(file.tell(), len(tnetstring.dumps({"a": 1})))
        self.assertEqual(tnetstring.load(file), [b"b"])
        self.assertIsNone(tnetstring.load(file))
        self.assertRaises(tnetstring.EndOfInput, tnetstring.load, file)

    def test_dump_then_load(self) -> None:
        """What dump() writes, load() reads."""
        file = io.BytesIO()
        for value, _ in ENCODINGS:
            tnetstring.dump(value, file)
        file.seek(0)
        self.assertEqual([tnetstring.load(file) for _ in ENCODINGS], [value for value, _ in ENCODINGS])

    def test_truncated_file(self) -> None:
        """A value cut short is a ValueError, not the end of the input."""
        for data in (b"10:abc", b"3:abc", b"12"):
            with self.assertRaises(ValueError) as caught:
                tnetstring.load(io.BytesIO(data))
            self.assertNotIsInstance(caught.exception, tnetstring.EndOfInput)

    def test_absurd_length(self) -> None:
        """A length prefix of more than twelve digits is refused before anything is read."""
        with self.assertRaises(ValueError) as caught:
            tnetstring.load(io.BytesIO(b"1234567890123456:x,"))
        self.assertIn("absurdly large", str(caught.exception))

    def test_bad_prefix(self) -> None:
        """Bytes that do not start with digits and a colon are refused."""
        for data in (b":x,", b"{\"log\": 1}", b"12x"):
            self.assertRaises(ValueError, tnetstring.load, io.BytesIO(data))
