#!/usr/bin/env python3
# ruff: noqa: E501  (long SQL literals read better unwrapped)
"""Check gw's SQL migrations against npm graphile-worker 0.18.0 on a live PostgreSQL.

    python tests/migration/verify_node_parity.py [--pg postgres://postgres@127.0.0.1:5432]
                                                 [--only catalog,steps,behaviour,m11,node,track]
                                                 [--keep]

Needs PostgreSQL (a role that may CREATE DATABASE), ``pg_dump`` on PATH,
psycopg 3, and Node 22 + graphile-worker 0.18.0 in ``.ci/node`` (installed on
demand with ``.ci/install-node-interop.sh``). Every check runs in scratch
databases named ``gw_parity_*`` that are dropped at the end (unless --keep).

Checks:

catalog    Node (``graphile-worker --schema-only``) and gw (``scripts/apply_migrations.py``)
           install into twin databases, for schema ``graphile_worker`` and ``My Worker``:
           normalised catalog-only ``pg_dump`` identical, catalog fingerprint
           (tests/migration/catalog_fingerprint.py) identical, ``migrations`` ids and
           breaking flags identical; the graphile_worker dump equals the committed
           tests/migration/node_0_18_0_schema.sql.
steps      After every migration N (1..20) the schema built by gw's files 1..N equals the
           schema built by the npm package's files 1..N; and mixing histories (upstream
           files 1..N then gw's N+1..20, and the reverse) ends at Node's final schema.
behaviour  The same sequence of add_job/add_jobs/remove_job/complete_jobs/... calls on a
           Node-installed and a gw-installed database gives identical results, table
           states, errors (SQLSTATE and message) and jobs:insert notifications.
m11        Twin databases at migration 10 (upstream files vs gw's files): the old
           functions behave alike; migration 11 fails with 22012 while a job is locked
           (and leaves max(id) = 10); once the lock is old it carries the data over alike.
node       The npm worker accepts a gw-installed schema: it migrates nothing, adds jobs
           through gw's add_job/add_jobs, and runs jobs added through gw's SQL.
track      src/gw/sql/gw/0001_workers.sql runs twice without error, leaves the
           migrations table alone, and its recovery functions behave as documented.

Prints one PASS/FAIL line per check and a final "N passed, M failed" line; exits 1 on failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.string import TextLoader

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import apply_migrations  # noqa: E402
import schema_dump  # noqa: E402
from catalog_fingerprint import fingerprint  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

NODE_PREFIX = ROOT / ".ci" / "node"
NODE_BIN = NODE_PREFIX / "node_modules" / ".bin" / "node"
NODE_PKG = NODE_PREFIX / "node_modules" / "graphile-worker"
NODE_CLI = NODE_PKG / "dist" / "cli.js"
NODE_SQL = NODE_PKG / "sql"
REFERENCE_DUMP = Path(__file__).resolve().parent / "node_0_18_0_schema.sql"
SCHEMAS = ["graphile_worker", "My Worker"]
PREFIX = "gw_parity_"

NOTIFY_FORMAT = re.compile(r'^\{"r":(?P<r>[0-9.eE+-]+),"count":(?P<count>-?[0-9]+)\}$')


# --------------------------------------------------------------------------- infrastructure


class Harness:
    def __init__(self, base_url: str, keep: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.keep = keep
        self.created: list[str] = []
        self.passed = 0
        self.failed = 0

    def url(self, db: str) -> str:
        return f"{self.base_url}/{db}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def fresh_db(self, name: str) -> str:
        db = PREFIX + name
        with self.admin() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db))
            )
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
        if db not in self.created:
            self.created.append(db)
        return db

    def drop_all(self) -> None:
        if self.keep:
            print(f"kept databases: {', '.join(self.created)}")
            return
        with self.admin() as conn:
            for db in self.created:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db))
                )

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f"\n{detail}" if detail else ""))
        return ok

    # installers -------------------------------------------------------------

    def node_install(self, db: str, schema: str) -> None:
        run([str(NODE_BIN), str(NODE_CLI), "--schema-only", "-s", schema, "-c", self.url(db)])

    def gw_install(
        self,
        db: str,
        schema: str,
        to: int | None = None,
        sql_dir: Path = apply_migrations.DEFAULT_SQL_DIR,
        gw_track: bool = False,
    ) -> None:
        apply_migrations.apply(self.url(db), schema, to, sql_dir, gw_track, quiet=True)

    def catalog_dump(self, db: str, schema: str) -> str:
        return schema_dump.normalise(
            schema_dump.run_pg_dump(self.url(db), schema), catalog_only=True
        )

    def fingerprint(self, db: str, schema: str) -> list[str]:
        with psycopg.connect(self.url(db)) as conn:
            return fingerprint(conn, schema)

    def migrations(self, db: str, schema: str) -> list[tuple[int, bool]]:
        with psycopg.connect(self.url(db)) as conn:
            return conn.execute(
                sql.SQL("select id, breaking from {}.migrations order by id").format(
                    sql.Identifier(schema)
                )
            ).fetchall()


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def diff(a: list[str] | str, b: list[str] | str, la: str = "node", lb: str = "gw") -> str:
    if isinstance(a, str):
        a = a.splitlines()
    if isinstance(b, str):
        b = b.splitlines()
    return "\n".join(list(difflib.unified_diff(a, b, la, lb, lineterm=""))[:80])


def render(text: str, schema: str) -> str:
    return apply_migrations.render(text, schema)


# --------------------------------------------------------------------------- value normalisation


def norm(value: Any, ref: dt.datetime) -> Any:
    """Make a result comparable across two databases/runs: timestamps near the
    reference become "now±Nm" (rounded to minutes), json/jsonb stay text."""
    if isinstance(value, dt.datetime):
        delta = (value - ref).total_seconds()
        if abs(delta) < 2 * 86400:
            return f"now{round(delta / 60):+d}m"
        return value.isoformat()
    if isinstance(value, dict):
        return {k: norm(v, ref) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [norm(v, ref) for v in value]
    return value


def norm_notify(payload: str) -> str:
    m = NOTIFY_FORMAT.match(payload)
    if not m:
        return f"NONSTANDARD:{payload}"
    float(m.group("r"))
    return f'{{"r":R,"count":{m.group("count")}}}'


@contextmanager
def session(url: str) -> Iterator[tuple[psycopg.Connection[dict[str, Any]], list[tuple[str, str]]]]:
    notes: list[tuple[str, str]] = []
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        for t in ("json", "jsonb"):
            conn.adapters.register_loader(t, TextLoader)
        conn.add_notify_handler(lambda n: notes.append((n.channel, n.payload)))
        conn.execute('listen "jobs:insert"')
        yield conn, notes


def canonical(rows: list[dict[str, Any]]) -> list[Any]:
    """Job ids and row order depend on the order in which a multi-row insert hands
    rows to PostgreSQL, which upstream leaves to the join plan (gw: spec order).
    For twin comparisons drop job ids and compare the rows as a sorted multiset."""
    out = []
    for row in rows:
        if "task_id" in row or "task_identifier" in row:
            row = {k: v for k, v in row.items() if k != "id"}
        out.append(row)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def run_script(url: str, schema: str, steps: list[str], canon: bool = False) -> list[str]:
    """Run each statement in autocommit mode; record result rows, error, notifications."""
    out: list[str] = []
    with session(url) as (conn, notes):
        for i, stmt in enumerate(steps):
            text = render(stmt, schema)
            ref = conn.execute("select clock_timestamp() as t").fetchone()["t"]  # type: ignore[index]
            notes.clear()
            try:
                cur = conn.execute(text.encode())
                rows = cur.fetchall() if cur.description else []
                result: Any = norm(canonical(rows) if canon else rows, ref)
            except psycopg.Error as exc:
                result = f"ERROR {exc.sqlstate}: {exc.diag.message_primary}"
            conn.execute("select 1")  # make sure pending notifications are read
            note_txt = [f"{ch} {norm_notify(p) if ch == 'jobs:insert' else p}" for ch, p in notes]
            out.append(
                f"#{i} {stmt.strip()}\n  -> {json.dumps(result, sort_keys=True, default=str)}"
                f"\n  notify {note_txt}"
            )
    return out


# --------------------------------------------------------------------------- checks


def check_catalog(h: Harness) -> None:
    for schema in SCHEMAS:
        tag = schema.replace(" ", "_").lower()
        node_db, gw_db = h.fresh_db(f"cat_node_{tag}"), h.fresh_db(f"cat_gw_{tag}")
        h.node_install(node_db, schema)
        h.gw_install(gw_db, schema)
        nd, gd = h.catalog_dump(node_db, schema), h.catalog_dump(gw_db, schema)
        h.check(f"catalog[{schema}]: pg_dump --catalog-only identical", nd == gd, diff(nd, gd))
        nf, gf = h.fingerprint(node_db, schema), h.fingerprint(gw_db, schema)
        h.check(
            f"catalog[{schema}]: catalog fingerprint identical ({len(nf)} lines)",
            nf == gf,
            diff(nf, gf),
        )
        nm, gm = h.migrations(node_db, schema), h.migrations(gw_db, schema)
        breaking = [i for i, b in gm if b]
        h.check(
            f"catalog[{schema}]: migrations ids/breaking identical {breaking}",
            nm == gm
            and [i for i, _ in gm] == list(range(1, 21))
            and breaking == [1, 3, 11, 13, 14, 16, 19],
            f"node={nm}\ngw={gm}",
        )
        if schema == "graphile_worker":
            ref = schema_dump.normalise(
                REFERENCE_DUMP.read_text(encoding="utf-8"), catalog_only=True
            )
            h.check(
                "catalog: committed node_0_18_0_schema.sql matches Node's live dump",
                ref == nd,
                diff(ref, nd, "committed", "node"),
            )
            h.check(
                "catalog: committed node_0_18_0_schema.sql matches gw's dump",
                ref == gd,
                diff(ref, gd, "committed", "gw"),
            )


def check_steps(h: Harness) -> None:
    bad: list[str] = []
    for n in range(1, 21):
        a, b = h.fresh_db("step_node"), h.fresh_db("step_gw")
        h.gw_install(a, "graphile_worker", to=n, sql_dir=NODE_SQL)
        h.gw_install(b, "graphile_worker", to=n)
        if h.catalog_dump(a, "graphile_worker") != h.catalog_dump(
            b, "graphile_worker"
        ) or h.fingerprint(a, "graphile_worker") != h.fingerprint(b, "graphile_worker"):
            bad.append(
                f"after migration {n}: "
                + diff(h.fingerprint(a, "graphile_worker"), h.fingerprint(b, "graphile_worker"))
            )
    h.check(
        "steps: schema after each migration 1..20 identical to upstream's", not bad, "\n".join(bad)
    )

    final = h.fresh_db("step_ref")
    h.node_install(final, "graphile_worker")
    ref_dump, ref_fp = (
        h.catalog_dump(final, "graphile_worker"),
        h.fingerprint(final, "graphile_worker"),
    )
    bad = []
    for n in range(1, 20):
        for first, second, label in (
            (NODE_SQL, apply_migrations.DEFAULT_SQL_DIR, "upstream->gw"),
            (apply_migrations.DEFAULT_SQL_DIR, NODE_SQL, "gw->upstream"),
        ):
            db = h.fresh_db("step_mix")
            try:
                h.gw_install(db, "graphile_worker", to=n, sql_dir=first)
                h.gw_install(db, "graphile_worker", sql_dir=second)
            except psycopg.Error as exc:
                bad.append(f"{label} split at {n}: {exc}")
                continue
            if (
                h.catalog_dump(db, "graphile_worker") != ref_dump
                or h.fingerprint(db, "graphile_worker") != ref_fp
            ):
                bad.append(f"{label} split at {n}: final schema differs")
    h.check(
        "steps: mixed histories (split after 1..19, both directions) end at Node's schema",
        not bad,
        "\n".join(bad),
    )


S = ":GRAPHILE_WORKER_SCHEMA"

BEHAVIOUR_STEPS: list[str] = [
    # plain adds; flags; task/queue ids must not be burned (migration 20)
    f"select * from {S}.add_job('task_a', '{{\"a\": 1}}')",
    f"select * from {S}.add_job('task_a', '{{\"a\":2}}', queue_name => 'q1', priority => 5, max_attempts => 3, flags => array['slow','big'])",
    f"select * from {S}.add_job('task_b', flags => array[]::text[])",
    f"select * from {S}.add_job('task_a', queue_name => 'q1')",
    f"select * from {S}.add_job('task_c')",
    f"select id, identifier from {S}._private_tasks order by id",
    f"select id, queue_name from {S}._private_job_queues order by id",
    # replace
    f"select * from {S}.add_job('task_a', '{{\"v\":1}}', job_key => 'k1', run_at => '2030-01-01T00:00:00Z')",
    f"select * from {S}.add_job('task_b', '{{\"v\":2}}', job_key => 'k1', run_at => '2031-01-01T00:00:00Z', queue_name => 'q2', priority => -3)",
    f"select * from {S}.add_job('task_b', '{{\"v\":2.5}}', job_key => 'k1', job_key_mode => null)",
    # preserve_run_at (only while attempts = 0)
    f"select * from {S}.add_job('task_a', '{{\"v\":1}}', job_key => 'k2', run_at => '2030-01-01T00:00:00Z')",
    f"select * from {S}.add_job('task_a', '{{\"v\":2}}', job_key => 'k2', run_at => '2031-01-01T00:00:00Z', job_key_mode => 'preserve_run_at')",
    f"update {S}._private_jobs set attempts = 1, last_error = 'x' where key = 'k2' returning id, attempts",
    f"select * from {S}.add_job('task_a', '{{\"v\":3}}', job_key => 'k2', run_at => '2032-01-01T00:00:00Z', job_key_mode => 'preserve_run_at')",
    # unsafe_dedupe: new key notifies, existing key only bumps revision
    f"select * from {S}.add_job('task_d', '{{\"v\":1}}', job_key => 'k3', job_key_mode => 'unsafe_dedupe', queue_name => 'q3')",
    f"select * from {S}.add_job('task_d', '{{\"v\":2}}', job_key => 'k3', job_key_mode => 'unsafe_dedupe', queue_name => 'q4')",
    f"select id, identifier from {S}._private_tasks order by id",
    f"select id, queue_name from {S}._private_job_queues order by id",
    # running keyed job is detached and replaced by a new row
    f"update {S}._private_jobs set locked_at = now() - interval '1 minute', locked_by = 'pool-x', attempts = 1 where key = 'k1' returning id",
    f"select * from {S}.add_job('task_a', '{{\"v\":3}}', job_key => 'k1')",
    # unsafe_dedupe against a running job: nothing new
    f"update {S}._private_jobs set locked_at = now() - interval '1 minute', locked_by = 'pool-x' where key = 'k3' returning id",
    f"select * from {S}.add_job('task_d', '{{\"v\":3}}', job_key => 'k3', job_key_mode => 'unsafe_dedupe')",
    # permanently failed keyed job is detached too
    f"update {S}._private_jobs set attempts = max_attempts where key = 'k2' returning id",
    f"select * from {S}.add_job('task_a', '{{\"v\":4}}', job_key => 'k2', job_key_mode => 'preserve_run_at')",
    # batch merge
    f"select * from {S}.add_job('batch', '[1, 2]', job_key => 'b')",
    f"select * from {S}.add_job('batch', '[3]', job_key => 'b')",
    f"select * from {S}.add_job('batch', '[{{\"z\": 1,  \"a\": 2}}]', job_key => 'b')",
    f"select * from {S}.add_job('batch', '{{\"x\":1}}', job_key => 'b')",
    f"select * from {S}.add_job('batch', '[4]', job_key => 'b')",
    # add_jobs, including Node's json_populate_recordset form and ordering of results
    f"select * from {S}.add_jobs(array[row('m1','{{}}',null,null,null,'mk1',null,null)::{S}.job_spec, row('m2','[1]','q1','2030-01-01Z',2,null,3,array['f'])::{S}.job_spec, row('m1',null,'q9',null,null,null,null,null)::{S}.job_spec])",
    f'select * from {S}.add_jobs(array(select json_populate_recordset(null::{S}.job_spec, \'[{{"identifier":"m3","payload":{{"z":1}},"job_key":"mk1","run_at":"2030-05-05T00:00:00Z"}},{{"identifier":"m4","flags":["a","b"]}}]\'::json)), true)',
    f"select * from {S}.add_jobs(array[row('m1','{{}}',null,null,null,'dup',null,null)::{S}.job_spec, row('m1','{{}}',null,null,null,'dup',null,null)::{S}.job_spec])",
    f"select * from {S}.add_jobs(array[]::{S}.job_spec[])",
    # argument errors
    f"select * from {S}.add_job('task_a', job_key => 'kx', job_key_mode => 'nonsense')",
    f"select * from {S}.add_job('task_a', job_key_mode => 'nonsense')",
    f"select * from {S}.add_job('task_a', max_attempts => 40000)",
    f"select * from {S}.add_job('task_a', priority => -40000)",
    f"select * from {S}.add_job('task_a', max_attempts => 0)",
    f"select * from {S}.add_job('task_a', job_key => '')",
    f"select * from {S}.add_job('task_a', job_key => repeat('k', 513))",
    f"select * from {S}.add_job(repeat('x', 129))",
    f"select * from {S}.add_job('task_a', queue_name => repeat('q', 129))",
    f"select * from {S}.add_job(null)",
    f"select * from {S}.add_job('task_z', job_key => 'kz', job_key_mode => 'unsafe_dedupe', max_attempts => 0)",
    # remove_job
    f"select * from {S}.remove_job('mk1')",
    f"select * from {S}.remove_job('k3')",
    f"select * from {S}.remove_job('nope')",
    f"select * from {S}.remove_job(null)",
    f"select * from {S}.add_job('task_a', job_key => 'k9')",
    f"update {S}._private_jobs set locked_at = now() - interval '5 hours', locked_by = 'dead' where key = 'k9' returning id",
    f"select * from {S}.remove_job('k9')",
    # admin functions: unlocked, locked 1 minute ago, locked 5 hours ago
    f"select * from {S}.add_jobs(array[row('adm','{{}}',null,'2030-01-01Z',null,'adm1',null,null)::{S}.job_spec, row('adm','{{}}',null,'2030-01-01Z',null,'adm2',null,null)::{S}.job_spec, row('adm','{{}}','qa','2030-01-01Z',null,'adm3',null,null)::{S}.job_spec, row('adm','{{}}',null,'2030-01-01Z',null,'adm4',null,null)::{S}.job_spec])",
    f"update {S}._private_jobs set locked_at = now() - interval '1 minute', locked_by = 'pool-y' where key in ('adm2')",
    f"update {S}._private_jobs set locked_at = now() - interval '5 hours', locked_by = 'pool-z' where key in ('adm3', 'adm4')",
    f"select * from {S}.reschedule_jobs(array(select id from {S}._private_jobs where key like 'adm%'), run_at => '2035-01-01Z', priority => 7, attempts => 2, max_attempts => 9)",
    f"select * from {S}.reschedule_jobs(array(select id from {S}._private_jobs where key like 'adm%'))",
    f"select * from {S}.reschedule_jobs(array(select id from {S}._private_jobs where key like 'adm%'), priority => 70000)",
    f"select * from {S}.permanently_fail_jobs(array(select id from {S}._private_jobs where key in ('adm1', 'adm2')))",
    f"select * from {S}.permanently_fail_jobs(array(select id from {S}._private_jobs where key in ('adm3')), 'gone')",
    f"select * from {S}.complete_jobs(array(select id from {S}._private_jobs where key like 'adm%'))",
    f"select {S}.force_unlock_workers(array['pool-x', 'pool-y'])",
    f"select * from {S}._private_job_queues order by id",
    f"select * from {S}._private_jobs order by id",
    f"select * from {S}.jobs order by id",
]


def check_behaviour(h: Harness) -> None:
    for schema in SCHEMAS:
        tag = schema.replace(" ", "_").lower()
        node_db, gw_db = h.fresh_db(f"beh_node_{tag}"), h.fresh_db(f"beh_gw_{tag}")
        h.node_install(node_db, schema)
        h.gw_install(gw_db, schema)
        a = run_script(h.url(node_db), schema, BEHAVIOUR_STEPS, canon=True)
        b = run_script(h.url(gw_db), schema, BEHAVIOUR_STEPS, canon=True)
        h.check(
            f"behaviour[{schema}]: {len(BEHAVIOUR_STEPS)} add/remove/admin steps give identical results,"
            " states, errors and notifications",
            a == b,
            diff("\n".join(a), "\n".join(b)),
        )
        if schema == "graphile_worker":
            text = "\n".join(b)
            Path(tempfile.gettempdir(), "gw_behaviour_transcript.txt").write_text(
                text, encoding="utf-8"
            )
            # spot checks on gw's transcript (so that "identical" is not "identically wrong")
            bad = []
            for entry in b:
                empty_batch = "add_jobs(array[]::" in entry
                for payload in re.findall(r"jobs:insert ([^']*)'", entry):
                    if ("NONSTANDARD" in payload) != (empty_batch and payload == "NONSTANDARD:"):
                        bad.append(entry)
            h.check(
                'behaviour: every jobs:insert payload is {"r":<float>,"count":<int>}'
                " (empty for an empty add_jobs array, as upstream)",
                not bad,
                "\n".join(bad),
            )
            with session(h.url(gw_db)) as (conn, _notes):
                rows = conn.execute(
                    render(
                        f"select id, key from {S}.add_jobs(array[row('o1','{{}}',null,null,null,'ok3',null,null)::{S}.job_spec,"
                        f" row('o2','{{}}','oq',null,null,'ok1',null,null)::{S}.job_spec,"
                        f" row('o1','{{}}',null,null,null,'ok2',null,null)::{S}.job_spec])",
                        schema,
                    ).encode()
                ).fetchall()
            keys, ids = [r["key"] for r in rows], [r["id"] for r in rows]
            h.check(
                "behaviour: gw's add_jobs inserts and returns rows in spec order (Node JS maps results by index)",
                keys == ["ok3", "ok1", "ok2"] and ids == sorted(ids),
                str(rows),
            )
            tasks = [
                ln for ln in b if "from :GRAPHILE_WORKER_SCHEMA._private_tasks order by id" in ln
            ]
            h.check(
                "behaviour: task ids are dense (no identity values burned by add_job)",
                '"id": 4, "identifier": "task_d"' in tasks[-1] and '"id": 5' not in tasks[-1],
                tasks[-1],
            )


M10_STEPS: list[str] = [
    f"select * from {S}.add_job('t1', '{{\"a\":1}}')",
    f"select * from {S}.add_job('t2', '{{\"b\":2}}', queue_name => 'q', job_key => 'k', flags => array['f'], priority => 3, max_attempts => 5)",
    f"select * from {S}.add_job('t1', '[1]', run_at => '2030-01-01Z')",
    f"select * from {S}.add_job('t2', '{{\"c\":3}}', queue_name => 'q')",
    f"select * from {S}.add_job('t2', '{{\"b\":22}}', job_key => 'k', queue_name => 'q')",
    f"select * from {S}.add_job('t3', job_key => 'k3', job_key_mode => 'unsafe_dedupe')",
    f"select * from {S}.add_job('t3', '[9]', job_key => 'k3', job_key_mode => 'unsafe_dedupe')",
    f"select * from {S}.add_job('t3', job_key => 'k3', job_key_mode => 'bad')",
    f"select * from {S}.add_job(repeat('x', 129))",
    f"select * from {S}.get_job('short')",
    f"select * from {S}.get_job('worker-abcdefghij', array['t1'])",
    f"select * from {S}.get_job('worker-abcdefghij', array['t2'], forbidden_flags => array['f'])",
    f"select * from {S}.fail_job('worker-abcdefghij', 4, 'boom')",
    f"select * from {S}.get_job('worker-abcdefghij', array['t2'])",
    f"select * from {S}.complete_job('worker-abcdefghij', 2)",
    f"select * from {S}.add_job('t4', job_key => 'k4')",
    f"select * from {S}.remove_job('k4')",
    f"select * from {S}.complete_jobs(array[3::bigint])",
    f"select * from {S}.reschedule_jobs(array[1::bigint, 3::bigint], priority => 9)",
    f"select * from {S}.permanently_fail_jobs(array[4::bigint, 1::bigint], 'nope')",
    f"select * from {S}.add_job('t5', '{{\"later\":true}}', queue_name => 'q5', job_key => 'k5', flags => array['x','y'])",
    f"select * from {S}.jobs order by id",
    f"select queue_name, job_count, locked_by from {S}.job_queues order by queue_name",
]

M11_STATE = [
    f"select j.*, t.identifier, q.queue_name from {S}._private_jobs j join {S}._private_tasks t on t.id = j.task_id left join {S}._private_job_queues q on q.id = j.job_queue_id order by j.id",
    f"select * from {S}.jobs order by id",
]


def try_migrate(h: Harness, db: str, schema: str, sql_dir: Path) -> str:
    try:
        h.gw_install(db, schema, sql_dir=sql_dir)
        return "ok"
    except psycopg.Error as exc:
        return f"{exc.sqlstate}"


def check_m11(h: Harness) -> None:
    schema = "graphile_worker"
    dbs = {
        "node": h.fresh_db("m11_node"),
        "gw": h.fresh_db("m11_gw"),
        "mixed": h.fresh_db("m11_mixed"),
    }
    first = {"node": NODE_SQL, "gw": apply_migrations.DEFAULT_SQL_DIR, "mixed": NODE_SQL}
    rest = {
        "node": NODE_SQL,
        "gw": apply_migrations.DEFAULT_SQL_DIR,
        "mixed": apply_migrations.DEFAULT_SQL_DIR,
    }
    transcripts = {}
    for k, db in dbs.items():
        h.gw_install(db, schema, to=10, sql_dir=first[k])
        transcripts[k] = run_script(h.url(db), schema, M10_STEPS)
    h.check(
        "m11: functions at migration 10 (get_job/fail_job/complete_job/add_job/...) behave alike",
        transcripts["node"] == transcripts["gw"],
        diff("\n".join(transcripts["node"]), "\n".join(transcripts["gw"])),
    )
    # a job locked 1 minute ago must make migration 11 fail with 22012 and roll back
    for k, db in dbs.items():
        with psycopg.connect(h.url(db), autocommit=True) as conn:
            conn.execute(
                render(
                    f"update {S}.jobs set locked_at = now() - interval '1 minute' where id = 1",
                    schema,
                )
            )
        res = try_migrate(h, db, schema, rest[k])
        ids = [i for i, _ in h.migrations(db, schema)]
        h.check(
            f"m11[{k}]: job locked 1 minute ago -> migration 11 fails with 22012, max(id) stays 10",
            res == "22012" and max(ids) == 10,
            f"result={res} ids={ids}",
        )
    # with every lock older than 4 hours, migration 11 carries the data over
    states = {}
    for k, db in dbs.items():
        with psycopg.connect(h.url(db), autocommit=True) as conn:
            conn.execute(
                render(
                    f"update {S}.jobs set locked_at = now() - interval '5 hours' where locked_at is not null",
                    schema,
                )
            )
            conn.execute(
                render(
                    f"update {S}.job_queues set locked_at = now() - interval '5 hours' where locked_at is not null",
                    schema,
                )
            )
        res = try_migrate(h, db, schema, rest[k])
        ids = [i for i, _ in h.migrations(db, schema)]
        h.check(
            f"m11[{k}]: no recent locks -> migrations 11..20 succeed",
            res == "ok" and max(ids) == 20,
            f"{res} {ids}",
        )
        states[k] = run_script(h.url(db), schema, M11_STATE, canon=True)
    carried = "\n".join(states["gw"])
    h.check(
        "m11: carried-over rows identical to upstream's (gw 1..20 and upstream 1..10 + gw 11..20)",
        states["node"] == states["gw"] == states["mixed"]
        and '"t5"' in carried
        and '"k5"' in carried,
        diff("\n".join(states["node"]), carried)
        + "\n"
        + diff("\n".join(states["node"]), "\n".join(states["mixed"]), "node", "mixed"),
    )


NODE_SCRIPT = r"""
import { makeWorkerUtils, runOnce, Logger } from %(index)s;
const [connectionString, schema] = process.argv.slice(2);
const logs = [];
const logger = new Logger(() => (level, message) => { logs.push(level + ": " + message); });
const seen = [];
const utils = await makeWorkerUtils({ connectionString, schema, logger });
await utils.migrate();
await utils.addJob("node_added", { from: "node" }, { jobKey: "nk", queueName: "nq" });
await utils.addJobs([{ identifier: "node_batch", payload: [1], jobKey: "bk" }, { identifier: "node_batch", payload: [7] }]);
await utils.release();
const task = (name) => async (payload) => { seen.push([name, payload]); };
await runOnce({ connectionString, schema, logger, concurrency: 1,
  taskList: { gw_added: task("gw_added"), node_added: task("node_added"), node_batch: task("node_batch") } });
console.log(JSON.stringify({ seen, warnings: logs.filter((l) => /^(warning|error)/.test(l)) }));
"""


def check_node(h: Harness) -> None:
    for schema in SCHEMAS:
        tag = schema.replace(" ", "_").lower()
        db = h.fresh_db(f"node_run_{tag}")
        h.gw_install(db, schema)
        with session(h.url(db)) as (conn, _notes):
            conn.execute(
                render(
                    f"select {S}.add_job('gw_added', '{{\"from\":\"gw\"}}', queue_name => 'nq')",
                    schema,
                ).encode()
            )
            conn.execute(
                render(f"select {S}.add_job('node_batch', '[0]', job_key => 'bk')", schema).encode()
            )
            before = conn.execute(
                render(f"select id, ts, breaking from {S}.migrations order by id", schema).encode()
            ).fetchall()
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp, "interop.mjs")
            script.write_text(
                NODE_SCRIPT % {"index": json.dumps((NODE_PKG / "dist" / "index.js").as_uri())}
            )
            proc = run([str(NODE_BIN), str(script), h.url(db), schema])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with session(h.url(db)) as (conn, _notes):
            after = conn.execute(
                render(f"select id, ts, breaking from {S}.migrations order by id", schema).encode()
            ).fetchall()
            left = conn.execute(
                render(f"select count(*) as n from {S}._private_jobs", schema).encode()
            ).fetchone()
        seen = sorted(json.dumps(x, sort_keys=True) for x in result["seen"])
        want = sorted(
            json.dumps(x, sort_keys=True)
            for x in [
                ["gw_added", {"from": "gw"}],
                ["node_added", {"from": "node"}],
                ["node_batch", [0, 1]],
                ["node_batch", [7]],
            ]
        )
        h.check(
            f"node[{schema}]: npm worker migrates nothing on a gw-installed schema (no warnings)",
            before == after and not result["warnings"],
            f"before={before}\nafter={after}\n{result['warnings']}",
        )
        h.check(
            f"node[{schema}]: npm worker runs jobs added by gw SQL and by its own addJob/addJobs (batch merged)",
            seen == want and left is not None and left["n"] == 0,
            f"seen={seen}\nwant={want}\nleft={left}",
        )


TRACK_STEPS = [
    f"select {S}.worker_heartbeat('w1', '{{\"host\":\"a\"}}')",
    f"select {S}.worker_heartbeat('w1')",
    f"select id, metadata, started_at <= last_heartbeat_at as ordered from {S}._private_workers",
    f"select * from {S}.list_stale_workers('1 hour')",
    f"update {S}._private_workers set last_heartbeat_at = now() - interval '10 minutes'",
    f"select * from {S}.list_stale_workers('5 minutes')",
    f"select * from {S}.add_jobs(array[row('r', '{{}}', 'rq', '2000-01-01Z', null, null, null, null)::{S}.job_spec, row('r', '{{}}', null, null, null, null, null, null)::{S}.job_spec])",
    f"update {S}._private_jobs set locked_by = 'dead', locked_at = now() - interval '10 minutes', attempts = 1",
    f"update {S}._private_job_queues set locked_by = 'dead', locked_at = now() - interval '10 minutes'",
    f"select * from {S}.list_orphan_locked_workers('5 minutes')",
    f"select * from {S}.list_orphan_locked_workers('1 hour')",
    f"select {S}.recover_dead_worker_jobs(array['dead'], interval '30 seconds') as n",
    f"select attempts, locked_by, locked_at, run_at, last_error from {S}._private_jobs order by id",
    f"select locked_by, locked_at from {S}._private_job_queues",
    f"select {S}.recover_dead_worker_jobs(array['dead']) as n",
    f"select {S}.delete_stale_workers(array['w1'])",
    f"select {S}.worker_heartbeat('w2')",
    f"select {S}.worker_deregister('w2')",
    f"select count(*) as n from {S}._private_workers",
]

TRACK_EXPECT = [
    ("#2 ", '"metadata": "{\\"host\\": \\"a\\"}"'),
    ("#3 ", "-> []"),
    ("#5 ", '"worker_id": "w1"'),
    ("#9 ", '"worker_id": "dead"'),
    ("#10 ", "-> []"),
    ("#11 ", '"n": 2'),
    (
        "#12 ",
        '"attempts": 0, "last_error": "Job recovered after worker interruption", "locked_at": null, "locked_by": null, "run_at": "now+0m"',
    ),
    ("#13 ", '"locked_at": null, "locked_by": null'),
    ("#14 ", '"n": 0'),
    ("#18 ", '"n": 0'),
]


def check_track(h: Harness) -> None:
    for schema in SCHEMAS:
        tag = schema.replace(" ", "_").lower()
        db = h.fresh_db(f"track_{tag}")
        h.gw_install(db, schema, gw_track=True)
        before_fp = h.fingerprint(db, schema)
        h.gw_install(db, schema, gw_track=True)  # second run: no-op
        after_fp = h.fingerprint(db, schema)
        ids = [i for i, _ in h.migrations(db, schema)]
        with psycopg.connect(h.url(db)) as conn:
            rows = conn.execute(
                sql.SQL("select id from {}._private_gw_migrations").format(sql.Identifier(schema))
            ).fetchall()
            rls = conn.execute(
                "select relrowsecurity from pg_class where oid = %s::regclass",
                (f"{apply_migrations.quote_ident(schema)}._private_workers",),
            ).fetchone()
        h.check(
            f"track[{schema}]: runs twice, catalog unchanged by the second run, migrations still 1..20,"
            " _private_gw_migrations = every track file, no RLS on _private_workers",
            before_fp == after_fp
            and ids == list(range(1, 21))
            and sorted(rows)
            == [
                (int(p.name[:4]),)
                for p in sorted((apply_migrations.DEFAULT_SQL_DIR / "gw").glob("[0-9]*.sql"))
            ]
            and rls == (False,),
            diff(before_fp, after_fp) + f"\nids={ids} rows={rows} rls={rls}",
        )
        race_db = h.fresh_db(f"track_race_{tag}")
        h.gw_install(race_db, schema)
        track_sql = render(
            (apply_migrations.DEFAULT_SQL_DIR / "gw" / "0001_workers.sql").read_text(), schema
        )
        errors: list[str] = []

        def one(url: str, text: str, errors: list[str]) -> None:
            try:
                with psycopg.connect(url) as conn:
                    conn.execute(text.encode())
            except psycopg.Error as exc:
                errors.append(f"{exc.sqlstate} {exc}")

        threads = [
            threading.Thread(target=one, args=(h.url(race_db), track_sql, errors)) for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h.check(
            f"track[{schema}]: 6 concurrent runs on a fresh schema all succeed",
            not errors,
            "\n".join(errors),
        )
        out = run_script(h.url(db), schema, TRACK_STEPS)
        missing = [
            (p, e) for p, e in TRACK_EXPECT if not any(o.startswith(p) and e in o for o in out)
        ]
        h.check(
            f"track[{schema}]: heartbeat/stale/orphan/recover/delete behave as RS's functions",
            not missing,
            "\n".join(out) + f"\nmissing: {missing}",
        )


CHECKS: dict[str, Callable[[Harness], None]] = {
    "catalog": check_catalog,
    "steps": check_steps,
    "behaviour": check_behaviour,
    "m11": check_m11,
    "node": check_node,
    "track": check_track,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pg", default=os.environ.get("GW_PARITY_PG", "postgres://postgres@127.0.0.1:5432")
    )
    p.add_argument("--only", default=",".join(CHECKS))
    p.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = p.parse_args(argv)
    if not (NODE_BIN.exists() and NODE_CLI.exists()):
        run(["bash", str(ROOT / ".ci" / "install-node-interop.sh")])
    h = Harness(args.pg, args.keep)
    try:
        for name in args.only.split(","):
            try:
                CHECKS[name](h)
            except Exception as exc:  # a crash inside one check is a failure of that check
                h.check(f"{name}: ran to completion", False, f"{type(exc).__name__}: {exc}")
    finally:
        h.drop_all()
    print(f"{h.passed} passed, {h.failed} failed")
    return 1 if h.failed else 0


if __name__ == "__main__":
    sys.exit(main())
