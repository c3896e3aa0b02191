"""The gw exception tree.

Every error gw raises for a user mistake or an environment problem is a
:class:`GwError`, so ``except gw.GwError`` catches all of them. Messages say
what went wrong and what to do about it; the class docstring is the default
message. A job's own exception is data (it ends up in ``last_error``), never a
``GwError``.
"""

from __future__ import annotations

__all__ = (
    "ConfigurationError",
    "ConnectionFailed",
    "ConnectionLost",
    "CrontabError",
    "DatabaseError",
    "GwError",
    "GwInternalError",
    "HookError",
    "InvalidJobSpec",
    "JobScheduleSkipped",
    "LockedJobsError",
    "MigrationError",
    "MissingExtra",
    "PayloadError",
    "PoolClosed",
    "PoolTimeout",
    "ResultTimeout",
    "ResultUnavailable",
    "SchemaTooNew",
    "TaskNotFound",
    "UnknownTaskWarning",
    "UnsupportedPostgres",
)


class GwError(Exception):
    """gw failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "gw failed.").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(GwError, ValueError):
    """An option or argument is invalid."""


class MissingExtra(ConfigurationError, ImportError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the {extra!r} extra: pip install 'gw[{extra}]'")
        self.extra = extra


def require_extra(feature: str, extra: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` unless every one of ``modules`` can be imported
    (checked without importing them)."""
    from importlib.util import find_spec

    for module in modules:
        if find_spec(module) is None:
            raise MissingExtra(feature, extra)


class InvalidJobSpec(ConfigurationError):
    """A job, its payload or its JobSpec is invalid; nothing was written."""


class CrontabError(ConfigurationError):
    """A crontab could not be parsed.

    ``line`` and ``column`` are 1-based positions in the crontab text (0 when
    the error is not tied to one place).
    """

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"invalid crontab: {where}{message}")


class TaskNotFound(GwError, LookupError):
    """No task handler is registered under that identifier."""


class ResultTimeout(GwError, TimeoutError):
    """A job did not finish within the time given to wait for its result."""


class ResultUnavailable(GwError, LookupError):
    """A job has no result to wait for: it is gone (or failed for good) and no
    gw worker with ``gw.History`` recorded how it ended."""


class PayloadError(GwError, ValueError):
    """A job payload does not match the handler's payload type."""


class DatabaseError(GwError):
    """A PostgreSQL operation failed.

    ``transient`` is true when trying again later may succeed (the connection
    dropped, the server is restarting or read-only, a deadlock or
    serialization failure); ``sqlstate`` is PostgreSQL's error code, if any.
    """

    transient: bool = False
    sqlstate: str | None = None


class ConnectionFailed(DatabaseError):
    """Could not connect to PostgreSQL."""

    transient = True


class ConnectionLost(DatabaseError):
    """The connection to PostgreSQL was lost."""

    transient = True


class PoolTimeout(DatabaseError):
    """No database connection became free in time."""

    transient = True


class PoolClosed(DatabaseError):
    """The connection pool is closed."""


class MigrationError(DatabaseError):
    """The gw schema could not be migrated."""


class UnsupportedPostgres(MigrationError):
    """gw needs PostgreSQL 12 or newer."""


class SchemaTooNew(MigrationError):
    """The database holds a breaking migration newer than this gw supports."""


class LockedJobsError(MigrationError):
    """Migration 11 cannot run while jobs are locked."""


class HookError(GwError):
    """A lifecycle hook refused the operation."""


class JobScheduleSkipped(HookError):
    """A BeforeJobSchedule hook skipped scheduling the job."""


class GwInternalError(GwError):
    """gw hit an internal error: this is a bug, please report it."""


class UnknownTaskWarning(UserWarning):
    """A job was added for a task identifier no worker has registered on the database.

    Usually a typo; the job is added all the same (the producer may start
    before the first worker). Silence it with :mod:`warnings` filters.
    """
