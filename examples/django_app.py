"""Django with gw: jobs added in Django's transactions, a worker from manage.py.

In a project: add "gw.contrib.django" to INSTALLED_APPS, use
``gw.contrib.django.add_job`` / ``add_job_on_commit`` in views, and run
``python manage.py gw_worker --tasks myapp.tasks``. This file is a whole
project in one script (pip install django):

    python examples/django_app.py

Uses DATABASE_URL when set, else the embedded PostgreSQL.
"""

from __future__ import annotations

import os

import gw

# Tasks run in a gw worker. Use plain def handlers to touch the Django ORM:
# they run in threads, where Django's synchronous ORM is at home.


@gw.task("send_receipt", queue_name="mail")
def send_receipt(payload: dict[str, object]) -> None:
    print(f"receipt for order {payload['order_id']} sent to {payload['email']}")


@gw.task("notify_team")
def notify_team(payload: dict[str, object]) -> None:
    print(f"team notified about order {payload['order_id']}")


def configure(url: str) -> None:
    import django
    from django.conf import settings
    from psycopg.conninfo import conninfo_to_dict

    db = conninfo_to_dict(url)
    settings.configure(
        INSTALLED_APPS=["gw.contrib.django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",  # psycopg 3
                "NAME": db.get("dbname", "postgres"),
                "USER": db.get("user", ""),
                "PASSWORD": db.get("password", ""),
                "HOST": db.get("host", ""),
                "PORT": db.get("port", ""),
            }
        },
        USE_TZ=True,
    )
    django.setup()


def place_order(email: str, *, fail: bool = False) -> int:
    from django.db import connection, transaction

    from gw.contrib.django import add_job, add_job_on_commit

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("insert into shop_order (email) values (%s) returning id", [email])
            (order_id,) = cursor.fetchone()
        # Part of this transaction: committed or rolled back with the order.
        add_job(send_receipt, {"order_id": order_id, "email": email})
        # Added only once the transaction has committed.
        add_job_on_commit(notify_team, {"order_id": order_id})
        if fail:
            raise RuntimeError(f"payment for order {order_id} declined")
    return int(order_id)


def main() -> None:
    import gw.sync
    from gw.db.embedded import EmbeddedPostgres

    embedded = None
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        embedded = EmbeddedPostgres()
        url = embedded.start()
    try:
        configure(url)
        from django.core.management import call_command
        from django.db import connection

        from gw.contrib.django import database_url

        with gw.sync.WorkerUtils(database_url()) as utils:
            utils.migrate()
        with connection.cursor() as cursor:
            cursor.execute(
                "create table if not exists shop_order (id serial primary key, email text)"
            )

        order = place_order("ada@example.com")
        print(f"order {order} placed")
        try:
            place_order("grace@example.com", fail=True)
        except RuntimeError as ex:
            print(f"{ex}: the order and its jobs were rolled back")
        # What `python manage.py gw_worker --tasks ... --once` does.
        call_command("gw_worker", "--tasks", "examples.django_app", "--once")
        connection.close()
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()
