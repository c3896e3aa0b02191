"""Static checks of the shipped SQL files (no database needed).

The live comparison against npm graphile-worker 0.18.0 is
tests/migration/verify_node_parity.py (needs PostgreSQL and Node).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SQL = ROOT / "src" / "gw" / "sql"
BREAKING = {1, 3, 11, 13, 14, 16, 19}

sys.path.insert(0, str(ROOT / "scripts"))


def _files() -> list[Path]:
    return sorted(SQL.glob("[0-9]*.sql"))


def test_exactly_twenty_numbered_migrations() -> None:
    assert [p.name for p in _files()] == [f"{n:06d}.sql" for n in range(1, 21)]


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_header_and_breaking_flag(path: Path) -> None:
    n = int(path.stem)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert re.fullmatch(rf"-- gw migration {n}: \S.*", lines[0]), lines[0]
    assert (lines[1] == "--! breaking-change") == (n in BREAKING)
    # the marker must not appear anywhere else (runners search the whole text)
    assert sum(line.startswith("--! breaking-change") for line in lines) == (
        1 if n in BREAKING else 0
    )


@pytest.mark.parametrize(
    "path", [*_files(), *sorted((SQL / "gw").glob("*.sql"))], ids=lambda p: p.name
)
def test_no_transaction_control_and_placeholder_only(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    assert not re.search(r"^\s*(begin|commit|rollback|start transaction)\s*;", code, re.I | re.M)
    assert not re.search(r"\b(create|drop)\s+(index|database)\s+concurrently\b", code, re.I)
    assert not re.search(r"\bvacuum\b", code, re.I)
    assert "graphile_worker." not in code.replace(":GRAPHILE_WORKER_SCHEMA.", "")
    # composite casts must be written ):::GRAPHILE_WORKER_SCHEMA.job_spec
    assert "::job_spec" not in code


@pytest.mark.parametrize("name", sorted(p.name for p in (SQL / "gw").glob("[0-9]*.sql")))
def test_gw_track_is_idempotent_ddl(name: str) -> None:
    text = (SQL / "gw" / name).read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    assert re.findall(r"create table (?!if not exists)", code, re.I) == []
    assert re.findall(r"create index (?!if not exists)", code, re.I) == []
    assert re.findall(r"create function", code, re.I) == []
    assert "migrations (" not in code.replace("_private_gw_migrations (", "")


def test_catalog_only_normalisation() -> None:
    import schema_dump

    raw = "\n".join(
        [
            "--",
            "-- PostgreSQL database dump",
            "\\restrict abc",
            "SET statement_timeout = 0;",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "",
            "CREATE FUNCTION s.f(a integer DEFAULT 1) RETURNS SETOF s.t",
            "    LANGUAGE plpgsql STRICT",
            "    AS $_$",
            "-- a comment inside the body stays",
            "begin return; end;",
            "$_$;",
            "",
            "",
            "CREATE TABLE s.t (",
            "    id integer NOT NULL",
            ");",
            "\\unrestrict abc",
        ]
    )
    full = schema_dump.normalise(raw)
    assert "-- a comment inside the body stays" in full
    assert "SET " not in full
    assert "restrict" not in full
    assert schema_dump.normalise(raw, catalog_only=True).splitlines() == [
        "CREATE FUNCTION s.f(a integer DEFAULT 1) RETURNS SETOF s.t LANGUAGE plpgsql STRICT;",
        "",
        "CREATE TABLE s.t (",
        "    id integer NOT NULL",
        ");",
    ]
