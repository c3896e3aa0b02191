#!/usr/bin/env python3
"""Print a normalised ``pg_dump --schema-only`` of one schema.

    schema_dump.py DATABASE_URL [--schema graphile_worker] [--catalog-only] [-o FILE]

Runs ``pg_dump --schema-only --no-owner --no-privileges`` (from PATH) for the
schema and removes what differs between two otherwise identical databases:
pg_dump's comment lines (banners, "Name: …; Type: …" headers), ``SET`` and
``set_config`` lines, ``\\restrict``/``\\unrestrict`` lines and repeated blank
lines. Comment lines inside function bodies are kept.

``--catalog-only`` also drops function bodies: each function becomes one line
``CREATE FUNCTION name(args) RETURNS … LANGUAGE … [STRICT …];`` so that two
implementations with the same signatures but different bodies compare equal.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

# A function body starts at "    AS $tag$" and ends at the first "$tag$;".
_AS_BODY = re.compile(r"^    AS (\$[A-Za-z0-9_]*\$)")


def _schema_pattern(schema: str) -> str:
    # pg_dump patterns fold case and treat * ? . as wildcards unless double-quoted.
    return '"' + schema.replace('"', '""') + '"'


def run_pg_dump(url: str, schema: str) -> str:
    cmd = [
        "pg_dump",
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--schema",
        _schema_pattern(schema),
        "--dbname",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"pg_dump failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def normalise(dump: str, catalog_only: bool = False) -> str:
    out: list[str] = []
    lines = dump.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _AS_BODY.match(line)
        if m:
            tag = m.group(1)
            # find the line on which the body ends (may be this same line)
            rest = line[m.end() :]
            j = i
            while not (rest if j == i else lines[j]).rstrip().endswith(tag + ";"):
                j += 1
                if j >= len(lines):
                    raise ValueError(f"unterminated function body starting at line {i + 1}")
            if catalog_only:
                # glue the header lines of this CREATE FUNCTION into one line
                k = len(out) - 1
                while k >= 0 and not out[k].startswith(("CREATE FUNCTION", "CREATE PROCEDURE")):
                    k -= 1
                if k < 0:
                    raise ValueError(f"function body without CREATE FUNCTION at line {i + 1}")
                header = " ".join(part.strip() for part in out[k:])
                del out[k:]
                out.append(header + ";")
            else:
                out.extend(lines[i : j + 1])
            i = j + 1
            continue
        stripped = line.strip()
        if (
            line.startswith("--")
            or line.startswith("SET ")
            or line.startswith("SELECT pg_catalog.set_config(")
            or line.startswith("\\restrict")
            or line.startswith("\\unrestrict")
        ):
            i += 1
            continue
        if not stripped and (not out or not out[-1].strip()):
            i += 1
            continue
        out.append(line.rstrip())
        i += 1
    while out and not out[-1].strip():
        out.pop()
    while out and not out[0].strip():
        out.pop(0)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="database URL (postgres://…)")
    p.add_argument("--schema", default="graphile_worker")
    p.add_argument("--catalog-only", action="store_true", help="drop function bodies")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    args = p.parse_args(argv)
    text = normalise(run_pg_dump(args.url, args.schema), catalog_only=args.catalog_only)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
