"""Shutdown: bounded cleanup steps, and the one error shape a worker raises.

Every cleanup step (hand back unstarted jobs, release interrupted ones, write
pending outcomes, deregister, the WorkerShutdown hook) runs in its own
shielded scope whose deadline is what is left of one shared budget
(``ShutdownConfig.cleanup_timeout``), so the whole of cleanup ends within
that budget even when the database stops answering: shutdown takes at most
``grace_period + cleanup_timeout``. A second signal cuts what is left to
:data:`HURRY_BUDGET`. Deadlines are on the event loop's real clock, not the
worker's (possibly fake) clock: they guard against real hangs.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg

from ..db._errors import database_error
from ..errors import GwError, GwInternalError
from ..runtime import CancelScope, current_time, get_cancelled_exc_class

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ("HURRY_BUDGET", "Cleanup", "public_error")

logger = logging.getLogger("gw.worker")

HURRY_BUDGET = 1.0
"""Seconds of cleanup left after a second shutdown request."""


class Cleanup:
    """Shielded steps sharing a time budget of ``budget`` seconds."""

    def __init__(self, budget: float) -> None:
        self._remaining = budget
        self._scopes: set[CancelScope] = set()
        self.errors: list[Exception] = []
        """Exceptions raised by steps (logged; the worker raises the first afterwards)."""

    @property
    def remaining(self) -> float:
        return max(0.0, self._remaining)

    @contextmanager
    def step(self, name: str) -> Iterator[CancelScope]:
        """Run the block shielded from outside cancellation, within the budget.

        An exception in the block is logged and kept in :attr:`errors`, so
        that one failing step does not skip the others.
        """
        start = current_time()
        scope = CancelScope(shield=True, deadline=start + self.remaining)
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        except Exception as ex:
            logger.error("shutdown: %s failed: %s", name, ex, exc_info=ex)
            self.errors.append(ex)
        finally:
            self._scopes.discard(scope)
            self._remaining -= current_time() - start
        if scope.cancelled_caught:
            logger.error("shutdown: %s did not finish in time; giving up on it", name)

    def hurry(self, budget: float = HURRY_BUDGET) -> None:
        """Cut what is left of the budget (and of the running step) to ``budget``."""
        self._remaining = min(self._remaining, budget)
        deadline = current_time() + budget
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, deadline)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def public_error(exc: BaseException) -> BaseException | None:
    """The single exception a worker raises for ``exc`` (None: re-raise ``exc``).

    KeyboardInterrupt and SystemExit come out as they are; plain cancellation
    is re-raised untouched; otherwise the first gw error, with psycopg and
    socket errors translated and anything else reported as a gw bug.
    """
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, (KeyboardInterrupt, SystemExit)):
            return leaf
    cancelled = get_cancelled_exc_class()
    errors = [leaf for leaf in leaves if not isinstance(leaf, cancelled)]
    if not errors:
        return None
    for leaf in errors:
        if isinstance(leaf, GwError):
            return leaf
    first = errors[0]
    if isinstance(first, (psycopg.Error, OSError)):
        return database_error(first, "the worker lost its database")
    if isinstance(first, Exception):
        error = GwInternalError(
            f"the worker stopped on an unexpected {type(first).__name__}: {first}; "
            "this is a bug in gw, please report it"
        )
        error.__cause__ = first
        return error
    return first
