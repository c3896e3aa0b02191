"""JSON in and out of the database, with msgspec."""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import InvalidJobSpec

__all__ = ("encode_payload", "json_loads")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode_payload(payload: Any) -> bytes:
    """Encode a job payload (None means ``{}``); raise InvalidJobSpec if it is not JSON-able."""
    if payload is None:
        return b"{}"
    try:
        return _encoder.encode(payload)
    except (TypeError, ValueError, msgspec.EncodeError) as ex:
        raise InvalidJobSpec(
            f"the payload cannot be encoded as JSON ({ex}); use dicts, lists, strings, "
            "numbers, booleans, None, datetimes or msgspec Structs"
        ) from None


def json_loads(data: str | bytes) -> Any:
    """Decode a json/jsonb column value."""
    return _decoder.decode(data)
