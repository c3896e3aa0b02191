"""JSON in and out of the database, with msgspec."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from ..errors import InvalidJobSpec

__all__ = ("encode_payload", "json_loads")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


_LEAVES = frozenset({str, int, bool, type(None)})


def encode_payload(payload: Any) -> bytes:
    """Encode a job payload (None means ``{}``); raise InvalidJobSpec if it is not JSON-able."""
    if payload is None:
        return b"{}"
    try:
        if type(payload) not in _LEAVES:
            _check_plain(payload, "payload")
        return _encoder.encode(payload)
    except InvalidJobSpec:
        raise
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as ex:
        raise InvalidJobSpec(
            f"the payload cannot be encoded as JSON ({ex}); use dicts, lists, strings, "
            "numbers, booleans, None, datetimes or msgspec Structs"
        ) from None


def _check_plain(value: Any, path: str) -> None:
    """Refuse what msgspec would encode lossily: sets (no order, so a job's
    payload would depend on hash order) and non-finite floats (msgspec writes
    null). Typed values (Structs, dataclasses) follow their own schema and
    are not inspected."""
    if isinstance(value, dict):
        for key, item in value.items():
            if type(item) not in _LEAVES:
                _check_plain(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if type(item) not in _LEAVES:
                _check_plain(item, f"{path}[{index}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJobSpec(
                f"the payload cannot be encoded as JSON: {path} is {value!r}, which JSON "
                "cannot represent"
            )
    elif isinstance(value, (set, frozenset)):
        raise InvalidJobSpec(
            f"the payload cannot be encoded as JSON: {path} is a {type(value).__name__}, and "
            "JSON has no sets; pass a list (sorted, so the payload is deterministic)"
        )


def json_loads(data: str | bytes) -> Any:
    """Decode a json/jsonb column value."""
    return _decoder.decode(data)
