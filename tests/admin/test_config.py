"""AdminAuth and AdminServerConfig: defaults, generated secrets, validation."""

from __future__ import annotations

import pytest

import gw
from gw.admin import AdminAuth, AdminServerConfig
from gw.core.utils import open_pool
from gw.errors import ConfigurationError


@pytest.fixture
def utils() -> gw.WorkerUtils:
    # The pool connects lazily: config validation never touches the database.
    return gw.WorkerUtils(open_pool("postgresql://nobody@127.0.0.1:1/none"))


def test_defaults_match_the_seeds(utils: gw.WorkerUtils) -> None:
    config = AdminServerConfig(utils)
    assert config.listen == "127.0.0.1:4000"
    assert (config.host, config.port) == ("127.0.0.1", 4000)
    assert config.read_only is False
    assert config.auth.mode == "basic"
    assert config.auth.username == "admin"
    assert config.auth.generated is True
    assert config.auth.secret
    assert len(config.auth.secret) >= 24
    # Each config gets its own generated password.
    assert AdminServerConfig(utils).auth.secret != config.auth.secret


def test_constructors_generate_missing_secrets() -> None:
    basic = AdminAuth.basic()
    assert (basic.mode, basic.username, basic.generated) == ("basic", "admin", True)
    given = AdminAuth.basic("ops", "pw")
    assert (given.username, given.secret, given.generated) == ("ops", "pw", False)
    bearer = AdminAuth.bearer()
    assert bearer.mode == "bearer"
    assert bearer.generated
    assert bearer.secret
    assert AdminAuth.bearer("tok").secret == "tok"
    header = AdminAuth.header()
    assert header.header_name == "x-graphile-worker-admin-token"
    assert header.generated
    custom = AdminAuth.header("X-My-Token", "tok")
    assert (custom.header_name, custom.secret, custom.generated) == ("x-my-token", "tok", False)
    none = AdminAuth.none()
    assert (none.mode, none.secret, none.generated) == ("none", None, False)


def test_the_secret_is_not_in_the_repr() -> None:
    assert "hunter2" not in repr(AdminAuth.basic(password="hunter2"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AdminAuth(mode="digest"), "unknown admin auth mode 'digest'"),  # type: ignore[arg-type]
        (lambda: AdminAuth.basic(password=""), "must not be empty"),
        (lambda: AdminAuth.basic("ad:min", "pw"), "must not contain ':'"),
        (lambda: AdminAuth.basic("", "pw"), "must be non-empty"),
        (lambda: AdminAuth.bearer("has space"), "printable ASCII without spaces"),
        (lambda: AdminAuth.bearer("tøken"), "printable ASCII without spaces"),
        (lambda: AdminAuth.header("bad header", "t"), "invalid admin auth header name"),
        (lambda: AdminAuth.header("Authorization", "t"), "cannot be 'Authorization'"),
        (
            lambda: AdminAuth.header("x-graphile-worker-admin-csrf", "t"),
            "cannot be 'x-graphile-worker-admin-csrf'",
        ),
    ],
)
def test_bad_auth_is_refused(make: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make()  # type: ignore[operator]
    assert message in str(info.value)


@pytest.mark.parametrize(
    "listen",
    [
        "",
        "4000",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "::1:4000",
        "[::1]4000",
        "[nothost]:80",
        "host name:80",
        "127.0.0.1:80x",
    ],
)
def test_unparsable_listen_addresses_are_refused(utils: gw.WorkerUtils, listen: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AdminServerConfig(utils, listen=listen)
    assert "invalid admin listen address" in str(info.value)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("localhost:5678", "localhost", 5678),
        ("[::1]:4000", "::1", 4000),
        ("0.0.0.0:65535", "0.0.0.0", 65535),
        ("admin.internal:80", "admin.internal", 80),
    ],
)
def test_listen_addresses_parse(utils: gw.WorkerUtils, listen: str, host: str, port: int) -> None:
    config = AdminServerConfig(utils, listen=listen)
    assert (config.host, config.port) == (host, port)


@pytest.mark.parametrize("listen", ["0.0.0.0:4000", "[::]:4000", "10.1.2.3:80", "example.com:80"])
def test_no_auth_on_a_non_loopback_address_is_refused(utils: gw.WorkerUtils, listen: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AdminServerConfig(utils, listen=listen, auth=AdminAuth.none())
    message = str(info.value)
    assert "refused" in message
    assert "use basic, bearer or header auth" in message
    # With auth, the same address is fine.
    assert AdminServerConfig(utils, listen=listen, auth=AdminAuth.bearer()).listen == listen


@pytest.mark.parametrize("listen", ["127.0.0.1:4000", "127.8.9.10:1", "[::1]:4000", "localhost:1"])
def test_no_auth_on_loopback_is_allowed(utils: gw.WorkerUtils, listen: str) -> None:
    assert AdminServerConfig(utils, listen=listen, auth=AdminAuth.none()).auth.mode == "none"


def test_importing_gw_admin_does_not_load_the_web_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gw.admin; "
        "print(sorted(m for m in ('quart', 'quart_trio', 'hypercorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
