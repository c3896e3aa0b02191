"""Admin server configuration: auth and listen address, validated up front.

Kept free of Quart/hypercorn imports so that the CLI can build and validate a
configuration (and print a generated secret) before loading the web stack.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .._address import parse_host_port
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..core.utils import WorkerUtils

__all__ = (
    "CSRF_HEADER",
    "DEFAULT_HEADER_NAME",
    "DEFAULT_LISTEN",
    "AdminAuth",
    "AdminServerConfig",
    "check_host_name",
    "host_of",
    "parse_listen",
)

AuthMode = Literal["basic", "bearer", "header", "none"]

DEFAULT_LISTEN = "127.0.0.1:4000"
DEFAULT_HEADER_NAME = "x-graphile-worker-admin-token"
CSRF_HEADER = "x-graphile-worker-admin-csrf"
AUTH_MODES: tuple[str, ...] = ("basic", "bearer", "header", "none")

# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers a token header must not shadow: the server or the page rely on them.
_RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "content-length",
        "content-type",
        "cookie",
        "host",
        "transfer-encoding",
        "connection",
        CSRF_HEADER,
    }
)


def _generate_secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class AdminAuth:
    """How the admin server authenticates requests.

    ``basic`` (HTTP Basic; also protects the page), ``bearer``
    (``Authorization: Bearer``), ``header`` (a custom header) or ``none``
    (loopback only). A ``None`` secret is generated and ``generated`` is True,
    so the caller knows to print it.
    """

    mode: AuthMode
    username: str = "admin"
    secret: str | None = field(default=None, repr=False)
    header_name: str = DEFAULT_HEADER_NAME
    generated: bool = False

    def __post_init__(self) -> None:
        if self.mode not in AUTH_MODES:
            raise ConfigurationError(
                f"unknown admin auth mode {self.mode!r}; expected one of {', '.join(AUTH_MODES)}"
            )
        if self.mode == "none":
            return
        if self.secret is None:
            object.__setattr__(self, "secret", _generate_secret())
            object.__setattr__(self, "generated", True)
        secret = self.secret
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError("the admin secret (password or token) must not be empty")
        if self.mode != "basic" and not all(0x21 <= ord(c) < 0x7F for c in secret):
            raise ConfigurationError(
                "the admin token must be printable ASCII without spaces (it travels in a header)"
            )
        if self.mode == "basic":
            if not self.username or ":" in self.username:
                raise ConfigurationError(
                    "the admin username must be non-empty and must not contain ':'"
                )
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.username + secret):
                raise ConfigurationError(
                    "the admin username and password must not contain control characters"
                )
        if self.mode == "header":
            name = self.header_name
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise ConfigurationError(
                    f"invalid admin auth header name {name!r}: use letters, digits and '-'"
                )
            if name.lower() in _RESERVED_HEADERS:
                raise ConfigurationError(
                    f"the admin auth header cannot be {name!r}; pick another name such as "
                    f"{DEFAULT_HEADER_NAME!r}"
                )
            object.__setattr__(self, "header_name", name.lower())

    @classmethod
    def basic(cls, username: str = "admin", password: str | None = None) -> AdminAuth:
        """HTTP Basic auth (the default); a None password is generated."""
        return cls(mode="basic", username=username, secret=password)

    @classmethod
    def bearer(cls, token: str | None = None) -> AdminAuth:
        """``Authorization: Bearer <token>``; a None token is generated."""
        return cls(mode="bearer", secret=token)

    @classmethod
    def header(cls, header_name: str = DEFAULT_HEADER_NAME, token: str | None = None) -> AdminAuth:
        """``<header_name>: <token>``; a None token is generated."""
        return cls(mode="header", secret=token, header_name=header_name)

    @classmethod
    def none(cls) -> AdminAuth:
        """No authentication: only accepted on a loopback listen address."""
        return cls(mode="none")


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) or raise ConfigurationError."""
    return parse_host_port(listen, "admin listen address", DEFAULT_LISTEN)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_\-]{0,62})(\.[a-z0-9_]([a-z0-9_\-]{0,62}))*\.?$"
)


def check_host_name(name: object) -> str:
    """A host name for ``allowed_hosts`` (lowercased), or ConfigurationError."""
    if not isinstance(name, str) or not _HOST_NAME.match(name.strip().lower()):
        raise ConfigurationError(
            f"invalid allowed host {name!r}: give a host name such as admin.example.com "
            "(no scheme, port or path)"
        )
    return name.strip().lower().rstrip(".")


def host_of(header: str) -> str | None:
    """The host name of a Host header value (``name``, ``name:port``, ``[v6]:port``)."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        return value[1:end]
    name, sep, port = value.partition(":")
    if sep and not re.fullmatch(r"\d{1,5}", port):
        return None
    return name.rstrip(".") or None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AdminServerConfig:
    """Everything the admin server needs: the WorkerUtils (its pool and
    schema), where to listen, how to authenticate, and whether writes are
    allowed. Invalid combinations raise :class:`~gw.errors.ConfigurationError`.

    ``allowed_hosts`` names the host names (besides IP addresses, ``localhost``
    and the listen host) that browsers may use to reach the server, e.g. its
    public name behind a proxy. Requests naming any other host are refused:
    that stops DNS-rebinding pages from talking to an admin on loopback.
    """

    utils: WorkerUtils
    listen: str = DEFAULT_LISTEN
    auth: AdminAuth = field(default_factory=AdminAuth.basic)
    read_only: bool = False
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        host, _port = parse_listen(self.listen)
        hosts: object = self.allowed_hosts
        if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
            raise ConfigurationError(f"allowed_hosts must be a list of host names, got {hosts!r}")
        object.__setattr__(self, "allowed_hosts", tuple(check_host_name(h) for h in hosts))
        if not isinstance(self.auth, AdminAuth):
            raise ConfigurationError("auth must be an AdminAuth (e.g. AdminAuth.basic())")
        if self.auth.mode == "none" and not is_loopback(host):
            raise ConfigurationError(
                f"admin auth mode 'none' on {self.listen} is refused: anyone who can reach "
                "that address could change jobs. Listen on 127.0.0.1 (or ::1), or use basic, "
                "bearer or header auth"
            )

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    def serves_host(self, header: str | None) -> bool:
        """Whether a request with this Host header is for this server.

        IP addresses (typed by the user; a rebinding page cannot send one for
        its own name), ``localhost`` and its subdomains (browsers resolve them
        locally), the listen host and ``allowed_hosts`` are; other names are not.
        """
        if header is None:
            return True  # HTTP/1.0 without Host: not a browser
        name = host_of(header)
        if name is None:
            return False
        if is_ip_literal(name) or name == "localhost" or name.endswith(".localhost"):
            return True
        return name == self.host.lower().rstrip(".") or name in self.allowed_hosts

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]
