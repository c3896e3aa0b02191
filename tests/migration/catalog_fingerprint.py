"""Catalog fingerprint of one schema: a sorted list of text lines describing
every object that pg_dump may not show verbatim (dropped attribute slots,
function cost/rows/parallel/leakproof flags, sequence parameters, trigger and
index definitions, composite type attributes, dependencies of sequences ...).

Two schemas built by the same DDL history yield identical fingerprints; object
OIDs and function bodies (prosrc) are deliberately left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

QUERIES: dict[str, str] = {
    "class": """
        select c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
               c.relreplident, c.reloptions, c.relnatts, c.relhastriggers, c.relispartition
          from pg_class c where c.relnamespace = %(ns)s""",
    "attribute": """
        select c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.atthasdef, a.attidentity, a.attgenerated, a.attisdropped,
               a.attcollation::regcollation,
               a.attstorage, a.attcompression, a.attstattarget,
               pg_get_expr(d.adbin, d.adrelid)
          from pg_attribute a
          join pg_class c on c.oid = a.attrelid
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where c.relnamespace = %(ns)s and a.attnum > 0""",
    "constraint": """
        select conname, contype, coalesce(c.relname, '-'), coalesce(t.typname, '-'),
               pg_get_constraintdef(k.oid), condeferrable, condeferred, convalidated, conislocal
          from pg_constraint k
          left join pg_class c on c.oid = k.conrelid
          left join pg_type t on t.oid = k.contypid
         where k.connamespace = %(ns)s""",
    "index": """
        select ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary,
               i.indisvalid, i.indisready, i.indimmediate, i.indisreplident
          from pg_index i join pg_class ic on ic.oid = i.indexrelid
         where ic.relnamespace = %(ns)s""",
    "proc": """
        select p.proname, pg_get_function_identity_arguments(p.oid),
               pg_get_function_arguments(p.oid),
               pg_get_function_result(p.oid), l.lanname, p.prokind, p.provolatile, p.proisstrict,
               p.prosecdef, p.proleakproof, p.proparallel, p.procost, p.prorows, p.proretset,
               p.proconfig, p.pronargdefaults, p.proargnames, p.proargmodes::text,
               p.prosqlbody is not null as has_sqlbody
          from pg_proc p join pg_language l on l.oid = p.prolang
         where p.pronamespace = %(ns)s""",
    "type": """
        select t.typname, t.typtype, t.typcategory, t.typdelim, coalesce(c.relkind::text, '-'),
               t.typnotnull, t.typdefault, format_type(t.typbasetype, t.typtypmod),
               (select array_agg(e.enumlabel order by e.enumsortorder)
                  from pg_enum e where e.enumtypid = t.oid)
          from pg_type t left join pg_class c on c.oid = t.typrelid
         where t.typnamespace = %(ns)s""",
    "trigger": """
        select c.relname, tg.tgname, pg_get_triggerdef(tg.oid), tg.tgenabled
          from pg_trigger tg join pg_class c on c.oid = tg.tgrelid
         where c.relnamespace = %(ns)s and not tg.tgisinternal""",
    "sequence": """
        select c.relname, format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmax,
               s.seqmin, s.seqcache, s.seqcycle,
               (select d.deptype::text || ':' || tc.relname || '.' || d.refobjsubid
                  from pg_depend d join pg_class tc on tc.oid = d.refobjid
                 where d.classid = 'pg_class'::regclass and d.objid = c.oid
                   and d.refclassid = 'pg_class'::regclass)
          from pg_sequence s join pg_class c on c.oid = s.seqrelid
         where c.relnamespace = %(ns)s""",
    "view": """
        select c.relname, pg_get_viewdef(c.oid, true)
          from pg_class c where c.relnamespace = %(ns)s and c.relkind in ('v', 'm')""",
    "policy": """
        select c.relname, p.polname, p.polcmd, p.polpermissive
          from pg_policy p join pg_class c on c.oid = p.polrelid
         where c.relnamespace = %(ns)s""",
    "rewrite": """
        select c.relname, r.rulename, r.ev_type, r.is_instead
          from pg_rewrite r join pg_class c on c.oid = r.ev_class
         where c.relnamespace = %(ns)s""",
}


def fingerprint(conn: psycopg.Connection, schema: str) -> list[str]:
    row = conn.execute("select oid from pg_namespace where nspname = %s", (schema,)).fetchone()
    if row is None:
        raise LookupError(f"schema {schema!r} does not exist")
    ns = row[0]
    lines: list[str] = []
    for name, query in QUERIES.items():
        for rec in conn.execute(query, {"ns": ns}).fetchall():
            lines.append(name + "|" + "|".join("∅" if v is None else str(v) for v in rec))
    return sorted(lines)
