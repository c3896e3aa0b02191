"""The strict JSON5 reader used for crontab payloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from gw.cron._json5 import Json5Error, loads


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", {}),
        ("[]", []),
        ("null", None),
        ("true", True),
        ("false", False),
        ("{a: 1}", {"a": 1}),
        ("{'a': 'b'}", {"a": "b"}),
        ('{"a": "b"}', {"a": "b"}),
        ("{$_a1: 1, _: 2, $: 3}", {"$_a1": 1, "_": 2, "$": 3}),
        ("{ünïcödé: 1, ǅ: 2, ʰ: 3}", {"ünïcödé": 1, "ǅ": 2, "ʰ": 3}),
        ("{a\u0301: 1}", {"a\u0301": 1}),
        ("{\\u0061b: 1}", {"ab": 1}),
        ("{a\\u0062: 1}", {"ab": 1}),
        ("{null: 1, true: 2, Infinity: 3}", {"null": 1, "true": 2, "Infinity": 3}),
        ("{a: 1,}", {"a": 1}),
        ("[1, 2,]", [1, 2]),
        ("{a: [{b: {}},],}", {"a": [{"b": {}}]}),
        ("{a: 1, a: 2}", {"a": 2}),
        ("// c\n{/* c */a/* c */:/* c */1/* c */,// c\n}// c", {"a": 1}),
        ("\ufeff\xa0\u2003\u2028\u2029\t\v\f\r\n 1", 1),
        ("0x1F", 31),
        ("0XaB", 171),
        ("-0x10", -16),
        ("+0x10", 16),
        ("+1", 1),
        ("-0", 0),
        (".5", 0.5),
        ("5.", 5.0),
        ("-.5e1", -5.0),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
        ("1.5e+2", 150.0),
        ("0", 0),
        ("0.0", 0.0),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'\"'", '"'),
        ('"\'"', "'"),
        ("'\\b\\f\\n\\r\\t\\v\\0'", "\b\f\n\r\t\v\0"),
        ("'\\x41\\u00e9'", "Aé"),
        ("'\\uD83D\\uDE00'", "\U0001f600"),
        ("'\\q\\/\\\\'", "q/\\"),
        ("'a\\\nb'", "ab"),
        ("'a\\\r\nb'", "ab"),
        ("'a\\\rb'", "ab"),
        ("'a\\\u2028b'", "ab"),
        ("'a\u2028b\u2029c'", "a\u2028b\u2029c"),
        ("'😀'", "😀"),
    ],
)
def test_valid(text: str, expected: Any) -> None:
    result = loads(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "pos", "fragment"),
    [
        ("", 0, "expected a value, got end of input"),
        ("   ", 3, "expected a value"),
        ("{", 1, "expected a property name or '}', got end of input"),
        ("{a}", 2, "expected ':' after the property name"),
        ("{a:}", 3, "expected a value, got character '}'"),
        ("{a:1 b:2}", 5, "expected ',' or '}'"),
        ("[1 2]", 3, "expected ',' or ']'"),
        ("[1", 2, "expected ',' or ']'"),
        ("{,}", 1, "expected a property name or '}'"),
        ("[,]", 1, "expected a value"),
        ("{1: 2}", 1, "expected a property name"),
        ("{a-b: 1}", 2, "expected ':'"),
        ("{\\x41: 1}", 1, "only \\uXXXX escapes are allowed in property names"),
        ("{a\\u0020b: 1}", 2, "escape does not produce a valid property name character"),
        ("{\\u0031: 1}", 1, "escape does not produce a valid property name character"),
        ("'abc", 0, "unterminated string"),
        ("'abc\\", 4, "unterminated string"),
        ("'a\nb'", 2, "line break inside a string"),
        ("'a\rb'", 2, "line break inside a string"),
        ("'\\1'", 1, "'\\1' is not a valid escape"),
        ("'\\01'", 1, "'\\0' must not be followed by a digit"),
        ("'\\x4'", 3, "expected 2 hex digits in escape"),
        ("'\\xZZ'", 3, "expected 2 hex digits"),
        ("'\\u12'", 3, "expected 4 hex digits"),
        ("'\\uD800'", 1, "lone UTF-16 surrogate"),
        ("'\\uDC00'", 1, "lone UTF-16 surrogate"),
        ("'\\uD800\\u0041'", 1, "lone UTF-16 surrogate"),
        ("Infinity", 0, "Infinity and NaN cannot be stored"),
        ("-Infinity", 0, "Infinity and NaN cannot be stored"),
        ("+NaN", 0, "Infinity and NaN cannot be stored"),
        ("NaN", 0, "Infinity and NaN"),
        ("1e999", 0, "number is too large"),
        ("-1e999", 0, "number is too large"),
        ("9" * 5000, 0, "number has too many digits"),
        ("01", 0, "leading zeros are not allowed"),
        ("-00.5", 1, "leading zeros"),
        ("0x", 2, "expected hex digits after '0x'"),
        (".", 1, "expected a digit"),
        ("-", 1, "expected a digit"),
        ("+.e1", 2, "expected a digit"),
        ("1e", 2, "expected a digit in the exponent"),
        ("1e+", 3, "expected a digit in the exponent"),
        ("1x", 1, "unexpected character 'x' after the value"),
        ("/* open", 0, "unterminated /* comment"),
        ("/x", 0, "expected a value, got character '/'"),
        ("{} x", 3, "unexpected character 'x' after the value"),
        ("tru", 0, "expected a value"),
        ("undefined", 0, "expected a value"),
        ("[" * 101 + "]" * 101, 100, "nesting is deeper than 100 levels"),
    ],
)
def test_invalid(text: str, pos: int, fragment: str) -> None:
    with pytest.raises(Json5Error) as info:
        loads(text)
    assert fragment in str(info.value)
    assert info.value.pos == pos


def test_nesting_limit_is_inclusive() -> None:
    nested: Any = loads("[" * 100 + "]" * 100)
    for _ in range(99):
        nested = nested[0]
    assert nested == []
    deep: Any = loads("{a:" * 100 + "1" + "}" * 100)
    for _ in range(100):
        deep = deep["a"]
    assert deep == 1


def check_outcome(text: str) -> None:
    """loads returns a value or raises a Json5Error pointing into the text."""
    try:
        loads(text)
    except Json5Error as error:
        position = error.pos
    else:
        return
    assert 0 <= position <= len(text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_reads_everything_json_writes(value: Any) -> None:
    assert loads(json.dumps(value)) == value
    assert loads(json.dumps(value, ensure_ascii=False, indent=2)) == value


@given(st.text())
def test_random_text_only_raises_json5_error(text: str) -> None:
    check_outcome(text)


@given(st.text(alphabet="{}[]:,'\"\\/*0123456789xXeE+-.abuntrfl \n\u2028"))
def test_random_syntax_soup_only_raises_json5_error(text: str) -> None:
    check_outcome(text)
