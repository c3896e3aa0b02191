"""A plain synchronous script (a cron job, a Flask view, a data migration) adding jobs.

``gw.sync.WorkerUtils`` blocks instead of awaiting. Given your own psycopg
connection it adds the job inside your transaction: the job exists only if
the transaction commits.

    python examples/sync_script.py

Uses DATABASE_URL when set, else the embedded PostgreSQL (as the async API does).
"""

from __future__ import annotations

import gw
import gw.sync


@gw.task("send_invoice", queue_name="billing", max_attempts=3)
def send_invoice(payload: dict[str, int]) -> None:
    print(f"invoice {payload['invoice']} sent")


def main() -> None:
    with gw.sync.WorkerUtils() as utils:
        utils.migrate()
        conn = utils.connection
        # Your own transaction: the table and the job commit together...
        with conn.transaction():
            conn.execute("create table if not exists invoices (id int primary key)")
            conn.execute("insert into invoices values (1) on conflict do nothing")
            job = utils.add_job(send_invoice, {"invoice": 1})
        print(f"added job {job.id} in queue {job.queue_name!r} with the invoice row")
        # ...or roll back together: no job is left behind.
        try:
            with conn.transaction():
                conn.execute("insert into invoices values (2) on conflict do nothing")
                utils.add_job(send_invoice, {"invoice": 2})
                raise RuntimeError("payment declined")
        except RuntimeError as ex:
            row = conn.execute("select count(*) from graphile_worker.jobs").fetchone()
            waiting = row[0] if row else 0
            print(f"rolled back ({ex}); jobs waiting: {waiting}")
        # Run what is waiting (a worker is async; anyio.run drives it from sync code).
        import anyio

        processed = anyio.run(gw.Worker([send_invoice], database_url=utils.url).run_once)
        print(f"processed {processed} job(s)")


if __name__ == "__main__":
    main()
