"""JSON in and out of the database, with msgspec."""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from ..errors import InvalidJobSpec

__all__ = (
    "MAX_ERROR_LENGTH",
    "describe_decode_error",
    "encode_payload",
    "json_loads",
    "nesting_depth",
    "storable_text",
)

MAX_ERROR_LENGTH = 32_768
"""Characters of an error message gw stores in ``last_error``; longer ones are cut."""

# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or a low one
# not preceded by a high one: valid JSON syntax, but not Unicode text.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


_LEAVES = frozenset({str, int, bool, type(None)})


def encode_payload(payload: Any) -> bytes:
    """Encode a job payload (None means ``{}``); raise InvalidJobSpec if it is not JSON-able."""
    if payload is None:
        return b"{}"
    try:
        data = _encoder.encode(payload)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as ex:
        raise InvalidJobSpec(
            f"the payload cannot be encoded as JSON ({ex}); use dicts, lists, strings, "
            "numbers, booleans, None, datetimes or msgspec Structs"
        ) from None
    # msgspec writes a non-finite float as null and a set as an array, so a
    # payload whose JSON has neither holds neither (two byte searches in C);
    # only the others are walked in Python.
    if type(payload) not in _LEAVES and (b"null" in data or b"[" in data):
        _check_plain(payload, None)
    return data


_Path = tuple["_Path | None", object] | None
"""Where a value sits in a payload: (parent path, key or index), built lazily."""


def _path_text(path: _Path) -> str:
    keys: list[object] = []
    while path is not None:
        path, key = path
        keys.append(key)
    return "payload" + "".join(f"[{key!r}]" for key in reversed(keys))


def _check_plain(value: Any, path: _Path) -> None:
    """Refuse what msgspec would encode lossily: sets (no order, so a job's
    payload would depend on hash order) and non-finite floats (msgspec writes
    null). Typed values (Structs, dataclasses) follow their own schema and
    are not inspected."""
    if isinstance(value, dict):
        for key, item in value.items():
            if type(item) not in _LEAVES:
                _check_plain(item, (path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if type(item) not in _LEAVES:
                _check_plain(item, (path, index))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJobSpec(
                f"the payload cannot be encoded as JSON: {_path_text(path)} is {value!r}, "
                "which JSON cannot represent"
            )
    elif isinstance(value, (set, frozenset)):
        raise InvalidJobSpec(
            f"the payload cannot be encoded as JSON: {_path_text(path)} is a "
            f"{type(value).__name__}, and JSON has no sets; pass a list (sorted, so the "
            "payload is deterministic)"
        )


def json_loads(data: str | bytes) -> Any:
    """Decode a json/jsonb column value.

    A value PostgreSQL accepted but Python cannot represent (nested deeper than
    the recursion limit, a number beyond float range, an unpaired surrogate
    escape) is returned as ``msgspec.Raw`` holding its JSON text, so that
    inspecting such a job never fails.
    """
    try:
        return _decoder.decode(data)
    except Exception:
        return msgspec.Raw(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)


def nesting_depth(text: str | bytes) -> int:
    """How deeply JSON arrays/objects nest in ``text`` (strings are skipped)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def describe_decode_error(ex: BaseException, text: str | bytes) -> str:
    """Why ``text`` (a payload PostgreSQL accepted) cannot be decoded, for ``last_error``."""
    if isinstance(ex, RecursionError):
        return (
            f"payload cannot be decoded: it nests {nesting_depth(text)} levels deep, more than "
            "gw can decode here (Python's recursion limit); flatten it"
        )
    if isinstance(ex, UnicodeDecodeError):
        return f"payload cannot be decoded: it is not valid UTF-8 ({ex.reason})"
    if isinstance(ex, msgspec.DecodeError):
        sample = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
        match = _LONE_SURROGATE.search(sample)
        if match is not None:
            return (
                f"payload cannot be decoded: it contains the unpaired UTF-16 surrogate escape "
                f"{match.group(0)}, which is not valid Unicode text"
            )
    reason = str(ex).strip() or type(ex).__name__
    if isinstance(ex, (msgspec.ValidationError, msgspec.DecodeError)):
        return f"payload cannot be decoded: {reason[0].lower()}{reason[1:]}"
    return f"payload cannot be decoded: {type(ex).__name__}: {reason}"


def storable_text(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """``text`` as PostgreSQL can store it: NUL and unpaired surrogates become
    U+FFFD, and text beyond ``limit`` characters is cut with a note."""
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters cut]"
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Pairs the surrogates that form a character, replaces the rest.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
