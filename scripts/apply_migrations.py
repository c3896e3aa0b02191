#!/usr/bin/env python3
"""Apply gw's SQL migrations to a database the way gw's migration runner does.

Test/verification tool, not the production runner. For each pending file
``src/gw/sql/0000NN.sql`` (ids above the current ``max(id)`` of the
``migrations`` table, up to ``--to``):

    BEGIN;
    INSERT INTO <schema>.migrations (id, breaking) VALUES (N, <file has "--! breaking-change">);
    <file text, with :GRAPHILE_WORKER_SCHEMA replaced by the quoted schema identifier>
    SELECT pg_notify('worker:migrate', '{"migrationNumber":N,"breaking":...}');
    COMMIT;

The file text is sent as one multi-statement simple query. ``--gw-track`` then
runs the idempotent gw-only files in ``src/gw/sql/gw/`` (each in a transaction).
``--sql-dir`` lets the same code replay any directory of NNNNNN.sql files
written for the same placeholder (used to compare against upstream files).

Usage: apply_migrations.py DATABASE_URL [--schema NAME] [--to N] [--gw-track]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQL_DIR = ROOT / "src" / "gw" / "sql"
PLACEHOLDER = re.compile(r":GRAPHILE_WORKER_SCHEMA\b")
BREAKING = re.compile(r"^--! breaking-change[ \t]*$", re.M)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def render(text: str, schema: str) -> str:
    quoted = quote_ident(schema)
    return PLACEHOLDER.sub(lambda _m: quoted, text)


def numbered_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = re.fullmatch(r"(\d{6})\.sql", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return found


def bootstrap(conn: psycopg.Connection, schema: str) -> None:
    s = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(s))
        conn.execute(
            sql.SQL(
                "create table if not exists {}.migrations("
                "id int primary key, ts timestamptz default now() not null, "
                "breaking boolean not null default false)"
            ).format(s)
        )


def current_max(conn: psycopg.Connection, schema: str) -> int:
    row = conn.execute(
        sql.SQL("select coalesce(max(id), 0) from {}.migrations").format(sql.Identifier(schema))
    ).fetchone()
    assert row is not None
    return int(row[0])


def apply(url: str, schema: str, to: int | None, sql_dir: Path, gw_track: bool, quiet: bool) -> int:
    applied = 0
    with psycopg.connect(url, autocommit=True) as conn:
        bootstrap(conn, schema)
        latest = current_max(conn, schema)
        for num, path in numbered_files(sql_dir):
            if num <= latest or (to is not None and num > to):
                continue
            text = path.read_text(encoding="utf-8")
            breaking = bool(BREAKING.search(text))
            with conn.transaction():
                conn.execute(
                    sql.SQL("insert into {}.migrations (id, breaking) values (%s, %s)").format(
                        sql.Identifier(schema)
                    ),
                    (num, breaking),
                )
                conn.execute(render(text, schema).encode("utf-8"))  # one simple query
                payload = json.dumps(
                    {"migrationNumber": num, "breaking": breaking}, separators=(",", ":")
                )
                conn.execute("select pg_notify('worker:migrate', %s)", (payload,))
            applied += 1
            if not quiet:
                sys.stdout.write(f"applied {path.name} (breaking={breaking})\n")
        if gw_track:
            for path in sorted((DEFAULT_SQL_DIR / "gw").glob("*.sql")):
                with conn.transaction():
                    conn.execute(render(path.read_text(encoding="utf-8"), schema).encode("utf-8"))
                if not quiet:
                    sys.stdout.write(f"applied gw/{path.name}\n")
    return applied


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--schema", default="graphile_worker")
    p.add_argument("--to", type=int, default=None, help="stop after migration N")
    p.add_argument("--sql-dir", type=Path, default=DEFAULT_SQL_DIR)
    p.add_argument("--gw-track", action="store_true", help="also run src/gw/sql/gw/*.sql")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        apply(args.url, args.schema, args.to, args.sql_dir, args.gw_track, args.quiet)
    except psycopg.Error as exc:
        diag = exc.diag
        sys.stderr.write(f"error: SQLSTATE {diag.sqlstate}: {diag.message_primary}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
