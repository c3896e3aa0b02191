"""gw for Django: add jobs in Django's transactions, run a worker from manage.py.

Add ``"gw.contrib.django"`` to ``INSTALLED_APPS`` for the ``gw_worker``
management command, then::

    from django.db import transaction
    from gw.contrib.django import add_job, add_job_on_commit

    with transaction.atomic():
        order = Order.objects.create(...)
        add_job(send_receipt, {"order_id": order.id})   # commits (or rolls back) with the order

    add_job_on_commit(notify_team, {"order_id": order.id})  # added only after the commit

``add_job`` runs on Django's own psycopg 3 connection (the ``postgresql``
backend with psycopg 3), so the job is part of whatever transaction Django
has open. ``python manage.py gw_worker --tasks myapp.tasks`` runs
``gw worker`` on the same database settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import ConfigurationError

if TYPE_CHECKING:
    from ...core._requests import TaskLike
    from ...types import Job, JobSpec

__all__ = ("add_job", "add_job_on_commit", "database_url")

default_app_config = "gw.contrib.django.apps.GwConfig"


def _utils(using: str) -> Any:
    import psycopg
    from django.db import connections

    from ...sync import WorkerUtils

    connection = connections[using]
    connection.ensure_connection()
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):
        raise ConfigurationError(
            f"gw.contrib.django needs Django's PostgreSQL backend on psycopg 3 for database "
            f"{using!r}; it uses {connection.vendor} through {type(raw).__module__}"
        )
    from django.conf import settings

    return WorkerUtils(raw, getattr(settings, "GW_SCHEMA", "graphile_worker"))


def add_job(
    task: str | TaskLike,
    payload: Any = None,
    spec: JobSpec | None = None,
    *,
    using: str = "default",
) -> Job:
    """Add a job on Django's connection ``using``, inside its current transaction."""
    return _utils(using).add_job(task, payload, spec)  # type: ignore[no-any-return]


def add_job_on_commit(
    task: str | TaskLike,
    payload: Any = None,
    spec: JobSpec | None = None,
    *,
    using: str = "default",
) -> None:
    """Add the job once the current transaction commits (at once outside one)."""
    from django.db import transaction

    transaction.on_commit(lambda: add_job(task, payload, spec, using=using), using=using)


def database_url(using: str = "default") -> str:
    """A libpq connection string for Django's database ``using`` (for gw.Worker)."""
    from django.db import connections
    from psycopg.conninfo import make_conninfo

    params = connections[using].get_connection_params()
    keep = {k: v for k, v in params.items() if k in _LIBPQ_KEYS and v not in (None, "")}
    return make_conninfo(**keep)


_LIBPQ_KEYS = frozenset(
    {"dbname", "user", "password", "host", "port", "sslmode", "options", "application_name"}
)
