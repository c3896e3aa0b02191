"""gw.db: psycopg on anyio (connection, pool, LISTEN, migrations, queries)."""

from __future__ import annotations
