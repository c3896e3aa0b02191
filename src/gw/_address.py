"""Listen addresses (``host:port``, ``[v6]:port``) for gw's servers."""

from __future__ import annotations

import ipaddress
import re

from .errors import ConfigurationError

__all__ = ("parse_host_port",)


def parse_host_port(text: str, what: str, example: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) or raise ConfigurationError
    naming ``what`` (e.g. "admin listen address") with ``example``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"invalid {what} {text!r}: expected host:port, e.g. {example}")
    value = text.strip()
    bad = ConfigurationError(
        f"invalid {what} {text!r}: expected host:port "
        f"(e.g. {example} or [::1]:{example.rpartition(':')[2]}) with a port between 0 and 65535"
    )
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise bad
        host, port_text = value[1:end], value[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host or ":" in host:
            raise bad
        if not re.fullmatch(r"[A-Za-z0-9.\-_]+", host):
            raise bad
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise bad
    return host, int(port_text)
