"""A small, strict JSON5 reader for crontab payloads (https://spec.json5.org/).

Supported: unquoted ECMAScript identifier keys, single- and double-quoted
strings with JSON5 escapes (including line continuations), trailing commas,
``//`` and ``/* */`` comments, hexadecimal numbers, leading/trailing decimal
points and explicit ``+`` signs.

Deliberate differences from JavaScript's ``JSON5.parse``: ``Infinity`` and
``NaN`` (and numbers that overflow to infinity) are rejected, because the
payload is stored in a PostgreSQL ``json`` column and JSON has no spelling for
them (JavaScript would silently turn them into ``null``). Escapes that produce
a lone UTF-16 surrogate are rejected for the same reason. Integers stay exact
Python ints instead of being rounded to doubles. Duplicate keys keep the last
value, as in JavaScript.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any, Final

__all__ = ("Json5Error", "loads")

_MAX_DEPTH: Final = 100
_WHITESPACE: Final = frozenset("\t\n\v\f\r \xa0\u2028\u2029\ufeff")
_LINE_TERMINATORS: Final = frozenset("\n\r\u2028\u2029")
_SIMPLE_ESCAPES: Final = {
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_ID_START_CATEGORIES: Final = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nl"})
_ID_PART_CATEGORIES: Final = _ID_START_CATEGORIES | {"Mn", "Mc", "Nd", "Pc"}
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_DIGITS: Final = frozenset("0123456789")


class Json5Error(ValueError):
    """The text is not valid JSON5; ``pos`` is the 0-based offset of the problem."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def loads(text: str) -> Any:
    """Parse one JSON5 value from ``text`` (comments and whitespace may surround it)."""
    reader = _Reader(text)
    reader.skip_blank()
    value = reader.value(0)
    reader.skip_blank()
    if reader.pos < len(text):
        raise Json5Error(f"unexpected {reader.describe()} after the value", reader.pos)
    return value


def _is_id_start(ch: str) -> bool:
    if ch in "$_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
        return True
    return ch > "\x7f" and unicodedata.category(ch) in _ID_START_CATEGORIES


def _is_id_part(ch: str) -> bool:
    if _is_id_start(ch) or ch in _DIGITS or ch in "\u200c\u200d":
        return True
    return ch > "\x7f" and unicodedata.category(ch) in _ID_PART_CATEGORIES


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def describe(self) -> str:
        ch = self.peek()
        return f"character {ch!r}" if ch else "end of input"

    def fail(self, expected: str) -> Json5Error:
        return Json5Error(f"expected {expected}, got {self.describe()}", self.pos)

    def skip_blank(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in _WHITESPACE or (ch > "\x7f" and unicodedata.category(ch) == "Zs"):
                self.pos += 1
            elif ch == "/" and self.peek(1) == "/":
                self.pos += 2
                while self.pos < len(text) and text[self.pos] not in _LINE_TERMINATORS:
                    self.pos += 1
            elif ch == "/" and self.peek(1) == "*":
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise Json5Error("unterminated /* comment", self.pos)
                self.pos = end + 2
            else:
                return

    def value(self, depth: int) -> Any:
        ch = self.peek()
        if ch == "{":
            return self.object(depth + 1)
        if ch == "[":
            return self.array(depth + 1)
        if ch in ("'", '"'):
            return self.string()
        if ch and (ch in _DIGITS or ch in "+-."):
            return self.number()
        for word, result in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return result
        if self.text.startswith(("Infinity", "NaN"), self.pos):
            raise self.non_finite()
        raise self.fail("a value")

    def non_finite(self) -> Json5Error:
        return Json5Error(
            "Infinity and NaN cannot be stored in a JSON payload; use a string or null",
            self.pos,
        )

    def enter(self, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise Json5Error(f"nesting is deeper than {_MAX_DEPTH} levels", self.pos)
        self.pos += 1

    def object(self, depth: int) -> dict[str, Any]:
        self.enter(depth)
        result: dict[str, Any] = {}
        while True:
            self.skip_blank()
            if self.peek() == "}":
                self.pos += 1
                return result
            key = self.key()
            self.skip_blank()
            if self.peek() != ":":
                raise self.fail("':' after the property name")
            self.pos += 1
            self.skip_blank()
            result[key] = self.value(depth)
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() == "}":
                self.pos += 1
                return result
            else:
                raise self.fail("',' or '}'")

    def array(self, depth: int) -> list[Any]:
        self.enter(depth)
        result: list[Any] = []
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.pos += 1
                return result
            result.append(self.value(depth))
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() == "]":
                self.pos += 1
                return result
            else:
                raise self.fail("',' or ']'")

    def key(self) -> str:
        if self.peek() in ("'", '"'):
            return self.string()
        chars: list[str] = []
        while True:
            at = self.pos
            ch = self.peek()
            escaped = ch == "\\"
            if escaped:
                if self.peek(1) != "u":
                    raise Json5Error("only \\uXXXX escapes are allowed in property names", at)
                self.pos += 2
                ch = self.hex_char(4)
            elif ch:
                self.pos += 1
            if ch and (_is_id_part(ch) if chars else _is_id_start(ch)):
                chars.append(ch)
                continue
            if escaped:
                raise Json5Error("escape does not produce a valid property name character", at)
            self.pos = at
            if not chars:
                raise self.fail("a property name or '}'")
            return "".join(chars)

    def hex_char(self, count: int) -> str:
        digits = self.text[self.pos : self.pos + count]
        if len(digits) != count or not all(c in _HEX for c in digits):
            raise Json5Error(f"expected {count} hex digits in escape", self.pos)
        self.pos += count
        return chr(int(digits, 16))

    def string(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise Json5Error("unterminated string", start)
            ch = text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(chars)
            if ch in "\n\r":
                raise Json5Error("line break inside a string; write it as \\n", self.pos)
            if ch != "\\":
                chars.append(ch)
                self.pos += 1
                continue
            chars.append(self.escape())

    def escape(self) -> str:
        at = self.pos
        self.pos += 1  # the backslash
        ch = self.peek()
        if not ch:
            raise Json5Error("unterminated string", at)
        self.pos += 1
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch]
        if ch == "0":
            if self.peek() in _DIGITS:
                raise Json5Error("'\\0' must not be followed by a digit", at)
            return "\0"
        if ch in _DIGITS:
            raise Json5Error(f"'\\{ch}' is not a valid escape", at)
        if ch == "x":
            return self.hex_char(2)
        if ch == "u":
            return self.unicode_escape(at)
        if ch in _LINE_TERMINATORS:
            # Line continuation: the backslash and the line break vanish.
            if ch == "\r" and self.peek() == "\n":
                self.pos += 1
            return ""
        return ch

    def unicode_escape(self, at: int) -> str:
        unit = self.hex_char(4)
        if "\ud800" <= unit <= "\udbff" and self.text.startswith("\\u", self.pos):
            saved = self.pos
            self.pos += 2
            low = self.hex_char(4)
            if "\udc00" <= low <= "\udfff":
                return chr(0x10000 + ((ord(unit) - 0xD800) << 10) + (ord(low) - 0xDC00))
            self.pos = saved
        if "\ud800" <= unit <= "\udfff":
            raise Json5Error("escape produces a lone UTF-16 surrogate", at)
        return unit

    def number(self) -> int | float:
        start = self.pos
        sign = ""
        if self.peek() in ("+", "-"):
            sign = self.peek()
            self.pos += 1
        if self.text.startswith(("Infinity", "NaN"), self.pos):
            self.pos = start
            raise self.non_finite()
        if self.peek() == "0" and self.peek(1) in ("x", "X"):
            self.pos += 2
            digits_start = self.pos
            while self.peek() in _HEX:
                self.pos += 1
            if self.pos == digits_start:
                raise self.fail("hex digits after '0x'")
            magnitude = int(self.text[digits_start : self.pos], 16)
            return -magnitude if sign == "-" else magnitude
        int_digits = self.digits()
        if int_digits > 1 and self.text[self.pos - int_digits] == "0":
            raise Json5Error("leading zeros are not allowed in numbers", self.pos - int_digits)
        is_float = False
        if self.peek() == ".":
            is_float = True
            self.pos += 1
            if self.digits() == 0 and int_digits == 0:
                raise self.fail("a digit")
        elif int_digits == 0:
            raise self.fail("a digit")
        if self.peek() in ("e", "E"):
            is_float = True
            self.pos += 1
            if self.peek() in ("+", "-"):
                self.pos += 1
            if self.digits() == 0:
                raise self.fail("a digit in the exponent")
        literal = self.text[start : self.pos]
        if not is_float:
            try:
                return int(literal)
            except ValueError:  # longer than sys.get_int_max_str_digits()
                raise Json5Error("number has too many digits", start) from None
        result = float(literal)
        if math.isinf(result):
            raise Json5Error("number is too large to store as JSON", start)
        return result

    def digits(self) -> int:
        start = self.pos
        while self.peek() in _DIGITS:
            self.pos += 1
        return self.pos - start
