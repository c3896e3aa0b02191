"""psycopg errors become gw errors here, and nowhere else.

:func:`database_error` maps a psycopg (or socket) error to a
:class:`~gw.errors.DatabaseError` that says what failed and whether trying
again can help (``transient``); :func:`translate` does it for a block.
Callers retry transient errors and report the rest; they never inspect
psycopg exception classes themselves.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg

from ..errors import ConnectionLost, DatabaseError, GwError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("database_error", "first_line", "is_transient", "translate")

# SQLSTATE classes worth retrying: connection exceptions, transaction
# rollbacks (deadlock, serialization), insufficient resources (too many
# connections, disk full), operator intervention (shutdown, cancel, restart).
_TRANSIENT_CLASSES = ("08", "40", "53", "57")
# A hot standby or a server in recovery: writes fail until failover completes.
_TRANSIENT_CODES = frozenset({"25006", "55P03", "55006"})


def first_line(ex: BaseException) -> str:
    """The first non-empty line of an error message (its type name if empty)."""
    for line in str(ex).splitlines():
        if line.strip():
            return line.strip()
    return type(ex).__name__


def is_transient(ex: BaseException) -> bool:
    """Whether the operation that raised ``ex`` may succeed if simply tried again."""
    if isinstance(ex, GwError):
        return isinstance(ex, DatabaseError) and ex.transient
    if isinstance(ex, psycopg.OperationalError):
        return True
    if isinstance(ex, psycopg.Error):
        state = ex.sqlstate or ""
        return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES
    return isinstance(ex, (OSError, TimeoutError))


def database_error(ex: BaseException, what: str) -> DatabaseError:
    """A :class:`DatabaseError` for ``ex`` raised while doing ``what``."""
    if isinstance(ex, DatabaseError):
        return ex
    transient = is_transient(ex)
    if isinstance(ex, TimeoutError):
        error: DatabaseError = ConnectionLost(
            f"{what}: the database did not answer in time ({first_line(ex)})"
        )
    elif isinstance(ex, psycopg.OperationalError) or not isinstance(ex, psycopg.Error):
        error = ConnectionLost(f"{what}: {first_line(ex)}")
    else:
        error = DatabaseError(f"{what}: {first_line(ex)}")
        error.sqlstate = ex.sqlstate
    error.transient = transient
    error.__cause__ = ex
    error.__suppress_context__ = True
    return error


@contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn psycopg and socket errors raised in the block into DatabaseErrors."""
    try:
        yield
    except (psycopg.Error, OSError) as ex:
        raise database_error(ex, what) from ex
    except UnicodeError as ex:  # text the connection's encoding cannot carry
        raise DatabaseError(f"{what}: {ex}") from ex
