"""The worker's job store: every statement a worker runs on its jobs.

Fetch, complete, fail, return unclaimed, release interrupted, return strays
and reset stale locks; the decoding of fetched rows, one job at a time (a
payload or row that cannot be decoded fails only its job); and the one
place where the worker's psycopg errors become :class:`~gw.errors.DatabaseError`
(``transient`` says whether retrying can help). Callers never see psycopg.

The store also knows which jobs this worker holds (fetched and not yet
written back), so that jobs a lost fetch locked without telling us can be
found and handed back (:meth:`JobStore.return_strays`).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import psycopg
from psycopg.types.string import ByteaBinaryLoader

from ..core._json import describe_decode_error, storable_text
from ..core.limits import KeyLimit, available_tokens, grant
from ..core.tracing import remember
from ..db._errors import first_line, translate
from ..db.queries import int_array
from ..runtime import fail_after, sleep
from ..types import Job

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from ..core.tracing import TraceContext
    from ..db.pool import PinnedConnection, Pool
    from ..db.queries import Queries
    from ..runtime import Clock
    from ._dispatch import Entry

__all__ = ("Failure", "JobStore")

logger = logging.getLogger("gw.worker")

_decode_json = msgspec.json.Decoder().decode
_encoder = msgspec.json.Encoder()

# A statement that has not answered in this long (real time) is abandoned and
# reported as a lost connection: a hung server must not stall a worker forever.
# Hot-path statements are watched by JobStore.watch (a cancel scope per
# statement cost a quarter of the default profile's CPU); the others run
# under fail_after.
STATEMENT_DEADLINE = 60.0
_PLACEHOLDER_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def _json_array(records: Sequence[bytes]) -> str:
    """History records (JSON objects) as one JSON array for the statement."""
    return (b"[" + b",".join(records) + b"]").decode()


@dataclass(slots=True)
class Failure:
    """One failed job to record: its message, a replacement payload for batch jobs,
    and what the retry policy decided (see :class:`gw.core.retry.Verdict`)."""

    id: int
    message: str
    payload: bytes | None = None
    keep_queue_locked: bool = False
    kind: Literal["retry", "final", "snooze"] = "retry"
    delay: float | None = None
    """Seconds until the next attempt; None: Graphile's backoff."""
    history: bytes | None = None
    """The attempt's history record (JSON), when the worker keeps history."""


class JobStore:
    """The statements of one worker, on its own pinned connections."""

    def __init__(
        self,
        pool: Pool,
        queries: Queries,
        worker_id: str,
        *,
        clock: Clock,
        use_local_time: bool = False,
        prepare: bool = True,
        traced: bool = False,
    ) -> None:
        self._pool = pool
        # True: prepare the hot-path statements at once; None: never (psycopg's
        # prepare_threshold decides, and it is None through a transaction pooler).
        self._prepare: bool | None = True if prepare else None
        self._q = queries
        self.worker_id = worker_id
        self._clock = clock
        self._local_time = use_local_time
        self.deadline = STATEMENT_DEADLINE
        self._fetch_conn = pool.pinned()
        self._complete_conn = pool.pinned()
        self._fail_conn = pool.pinned()
        self._identifiers: dict[int, str] = {}
        self._queue_names: dict[int, str] = {}
        self.held: dict[int, int | None] = {}
        """Jobs this worker locked and has not written back: id -> queue id."""
        self.strays_possible = False
        """A fetch failed after it may have locked jobs: look for them (return_strays)."""
        self._cursor: tuple[Any, Any] | None = None
        self._busy: dict[object, tuple[PinnedConnection, str, float]] = {}
        """Hot-path statements in flight: token -> (connection, what, monotonic start)."""
        self.trace_contexts: dict[int, TraceContext] | None = {} if traced else None
        """gw.Tracing: the stored W3C context of fetched jobs whose attempt has not
        started, by job id (None: tracing is off and the fetch reads none)."""

    # ------------------------------------------------------------------ tasks

    async def register_tasks(self, identifiers: Sequence[str]) -> dict[int, str]:
        """Make sure the task identifiers exist; return their ids."""
        params = {"identifiers": list(identifiers)}
        with translate("registering task identifiers"), fail_after(self.deadline):
            async with self._pool.connection() as conn:
                await conn.execute(self._q.register_task_identifiers, params)
                cur = await conn.execute(self._q.task_ids, params)
                rows = await cur.fetchall()
        self._identifiers = {row[0]: row[1] for row in rows}
        return dict(self._identifiers)

    # ------------------------------------------------------------------ fetching

    async def fetch(
        self,
        limit: int,
        task_ids: str,
        forbidden_flags: Sequence[str],
        limited_queues: Sequence[str] = (),
    ) -> list[Entry]:
        """Lock up to ``limit`` runnable jobs of ``task_ids`` (an int array literal),
        outside the named queues in ``limited_queues``."""
        params = self._fetch_params(limit, task_ids, forbidden_flags, limited_queues)
        query = self._q.get_jobs(
            local_time=self._local_time,
            with_flags=bool(forbidden_flags),
            skip_queues=bool(limited_queues),
            traced=self.trace_contexts is not None,
        )
        pinned = self._fetch_conn
        try:
            with translate("fetching jobs"):
                async with self._watched(pinned, "fetching jobs") as conn:
                    cur, rows, row_errors = await self._locked_rows(conn, query, params)
        except BaseException:
            # The statement may have locked jobs before the error or the
            # cancellation reached us: they are looked for before the next fetch.
            self.strays_possible = True
            await self._fetch_conn.discard()
            raise
        return self._entries(cur, rows, row_errors)

    async def fetch_limited(
        self,
        limit: KeyLimit,
        want: int,
        task_ids: str,
        forbidden_flags: Sequence[str],
        limited_queues: Sequence[str] = (),
    ) -> tuple[list[Entry], int | None, float]:
        """Lock up to ``want`` jobs of a limited key, within what its fleet-wide
        limits allow now; returns them, how many the limits granted (None: another
        worker is fetching this key right now) and the tokens left in its bucket.

        One transaction under the key's advisory lock: read the bucket and the
        running count, lock the jobs (recording a slot each), store the bucket.
        """
        key = limit.key
        slots = limit.max_concurrency is not None
        rate = limit.rate.per_second if limit.rate is not None else None
        params = self._fetch_params(want, task_ids, forbidden_flags, limited_queues)
        params.update(key=key, slots=slots)
        if limit.kind == "queue":
            params["queue"] = limit.name
        query = self._q.get_jobs(
            local_time=self._local_time,
            with_flags=bool(forbidden_flags),
            skip_queues=bool(limited_queues),
            traced=self.trace_contexts is not None,
            scope=limit.kind,
        )
        pinned = self._fetch_conn
        cur: Any = None
        rows: list[Any] = []
        row_errors: dict[int, str] = {}
        try:
            with translate(f"fetching jobs of {key}"):
                async with self._watched(pinned, f"fetching jobs of {key}") as conn:
                    async with conn.transaction():
                        locked = await conn.execute(self._q.limit_lock, {"key": key})
                        if not (await locked.fetchone() or (False,))[0]:
                            return [], None, 0.0
                        state = await conn.execute(
                            self._q.limit_state, {"key": key, "rate": rate, "slots": slots}
                        )
                        found = await state.fetchone()
                        if found is None:  # the row was deleted: configure it again
                            await self._configure(conn, [limit])
                            found = (0.0, 0, datetime.now(UTC))
                        refilled, running, at = float(found[0]), int(found[1]), found[2]
                        granted = grant(limit, refilled, running, want)
                        if granted:
                            params["limit"] = granted
                            cur, rows, row_errors = await self._locked_rows(conn, query, params)
                        tokens = available_tokens(limit, refilled)
                        tokens = tokens - len(rows) if limit.rate is not None else 0.0
                        await conn.execute(
                            self._q.limit_store,
                            {"key": key, "tokens": tokens, "slots": slots, "at": at},
                        )
        except BaseException:
            self.strays_possible = True
            await self._fetch_conn.discard()
            raise
        return self._entries(cur, rows, row_errors), granted, tokens

    async def configure_limits(self, limits: Sequence[KeyLimit]) -> None:
        """Record this worker's limits (the last worker to start sets them)."""
        if not limits:
            return
        with translate("recording fleet-wide limits"), fail_after(self.deadline):
            async with self._pool.connection() as conn:
                await self._configure(conn, limits)

    async def _configure(self, conn: Any, limits: Sequence[KeyLimit]) -> None:
        rows = _encoder.encode([limit.row() for limit in limits]).decode()
        await conn.execute(self._q.limit_configure, {"limits": rows})

    def _fetch_params(
        self,
        limit: int,
        task_ids: str,
        forbidden_flags: Sequence[str],
        limited_queues: Sequence[str],
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"task_ids": task_ids, "limit": limit, "worker_id": self.worker_id}
        if forbidden_flags:
            params["forbidden_flags"] = list(forbidden_flags)
        if limited_queues:
            params["limited_queues"] = list(limited_queues)
        if self._local_time:
            params["now"] = self._clock.now()
        return params

    async def _locked_rows(
        self, conn: Any, query: str, params: dict[str, Any]
    ) -> tuple[Any, list[Any], dict[int, str]]:
        """Run a fetch statement; its cursor, rows and unreadable rows' reasons."""
        cur = self._fetch_cursor(conn)
        await cur.execute(query, params, prepare=self._prepare)
        rows, row_errors = await _read_rows(cur)
        queue_ids = {r[1] for r in rows if r is not None and r[1] is not None}
        unknown = queue_ids - self._queue_names.keys()
        if unknown:
            names = await conn.execute(self._q.queue_names, {"ids": int_array(unknown)})
            self._queue_names.update(await names.fetchall())
        return cur, rows, row_errors

    def _entries(self, cur: Any, rows: list[Any], row_errors: dict[int, str]) -> list[Entry]:
        if not rows:
            return []
        entries = [
            self._entry(row) if row is not None else self._unreadable(cur, i, row_errors[i])
            for i, row in enumerate(rows)
        ]
        held = self.held
        for entry in entries:
            held[entry[0].id] = entry[0].job_queue_id
        if self.trace_contexts is not None:
            # The traced fetch's two extra columns (see Queries.get_jobs).
            found = ((r[0], r[17], r[18]) for r in rows if r is not None and r[17] is not None)
            remember(self.trace_contexts, held, found)
        return entries

    def _fetch_cursor(self, conn: Any) -> Any:
        """The fetch's cursor on ``conn``: binary results (timestamps decode several
        times faster than text) and payloads as raw bytes, decoded job by job."""
        cached = self._cursor
        if cached is not None and cached[0] is conn:
            return cached[1]
        cur = conn.cursor(binary=True)
        cur.adapters.register_loader("json", ByteaBinaryLoader)
        self._cursor = (conn, cur)
        return cur

    def _entry(self, row: tuple[Any, ...]) -> Entry:
        text = row[3]
        try:
            payload = _decode_json(text)
            error = None
        except Exception as ex:  # the payload's own problem: fail this job alone
            payload = msgspec.Raw(text)
            error = describe_decode_error(ex, text)
        queue_id = row[1]
        # Positional, in Job's field order: this runs once per fetched job.
        job = Job(
            row[0],
            self._identifiers.get(row[2], f"<unknown task {row[2]}>"),
            self._queue_names.get(queue_id) if queue_id is not None else None,
            payload,
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            row[11],
            row[12],
            row[13],
            row[14],
            row[15],
            row[16],
            row[2],
            queue_id,
        )
        return job, text, error

    def _unreadable(self, cur: Any, index: int, reason: str) -> Entry:
        """A row psycopg could not load (e.g. a run_at of -infinity): built from its
        integer columns so that the job can be failed with the reason."""
        result = cur.pgresult

        def integer(column: int) -> int | None:
            raw = result.get_value(index, column)
            return None if raw is None else int.from_bytes(raw, "big", signed=True)

        queue_id = integer(1)
        task_id = integer(2) or 0
        job = Job(
            integer(0) or 0,
            self._identifiers.get(task_id, f"<unknown task {task_id}>"),
            self._queue_names.get(queue_id) if queue_id is not None else None,
            None,
            integer(4) or 0,
            _PLACEHOLDER_TIME,
            integer(6) or 0,
            integer(7) or 0,
            None,
            _PLACEHOLDER_TIME,
            _PLACEHOLDER_TIME,
            None,
            _PLACEHOLDER_TIME,
            self.worker_id,
            0,
            None,
            False,
            task_id,
            queue_id,
        )
        return job, b"null", f"gw cannot read this job's row: {reason}; fix or remove the job"

    async def return_strays(self) -> int:
        """Hand back jobs locked by this worker that it does not hold (a lost fetch)."""
        held_queues = {q for q in self.held.values() if q is not None}
        params = {
            "worker_id": self.worker_id,
            "held": int_array(self.held),
            "held_queues": int_array(held_queues),
        }
        with translate("returning stray jobs"), fail_after(self.deadline):
            async with self._pool.connection() as conn:
                cur = await conn.execute(self._q.return_strays, params)
                row = await cur.fetchone()
        self.strays_possible = False
        count = int(row[0]) if row else 0
        if count:
            logger.warning(
                "returned %d job(s) that a failed fetch had locked for %s",
                count,
                self.worker_id,
            )
        return count

    async def claim_cancel_requests(self) -> list[tuple[int, str]]:
        """Take (delete) the cancel requests for jobs this worker holds."""
        params = {"worker_id": self.worker_id}
        with translate("reading cancel requests"), fail_after(self.deadline):
            async with self._pool.connection() as conn:
                cur = await conn.execute(self._q.claim_cancel_requests, params)
                rows = await cur.fetchall()
        return [(int(row[0]), str(row[1])) for row in rows]

    # ------------------------------------------------------------------ outcomes

    async def complete(
        self, ids: list[int], keep_queue_locked: list[int], history: Sequence[bytes] = ()
    ) -> None:
        """Delete completed jobs; unlock their queues unless listed in ``keep_queue_locked``;
        write the ``history`` records (JSON) of those deleted."""
        params = {
            "ids": int_array(ids),
            "keep": int_array(keep_queue_locked),
            "worker_id": self.worker_id,
        }
        query = self._q.complete_jobs
        if history:
            params["history"] = _json_array(history)
            query = self._q.complete_jobs_history
        await self._on_pinned(self._complete_conn, "completing jobs", query, params)
        self._forget(ids)

    async def fail(self, failures: Sequence[Failure]) -> None:
        """Record failed attempts (retry with Graphile's backoff, or permanent)."""
        rows = []
        query = self._q.fail_jobs
        for failure in failures:
            row: dict[str, Any] = {
                "id": failure.id,
                "message": storable_text(failure.message),
                "keep": failure.keep_queue_locked,
            }
            if failure.payload is not None:
                row["payload"] = msgspec.Raw(failure.payload)
            if failure.kind != "retry":
                row[failure.kind] = True
            if failure.delay is not None:
                row["delay"] = failure.delay
            if failure.history is not None:
                row["h"] = msgspec.Raw(failure.history)
                query = self._q.fail_jobs_history
            rows.append(row)
        params = {
            "failures": _encoder.encode(rows).decode(),
            "worker_id": self.worker_id,
            "now": self._clock.now() if self._local_time else None,
        }
        await self._on_pinned(self._fail_conn, "recording failed jobs", query, params)
        self._forget(f.id for f in failures)

    async def return_unclaimed(self, ids: list[int], keep_queue_locked: list[int]) -> None:
        """Hand back fetched jobs that never started (their attempt does not count)."""
        params = {"ids": ids, "keep": keep_queue_locked, "worker_id": self.worker_id}
        await self._on_pool("returning unstarted jobs", self._q.return_jobs, params)
        self._forget(ids)

    async def release_interrupted(
        self, ids: list[int], delay: float, message: str, history: Sequence[bytes] = ()
    ) -> None:
        """Unlock jobs interrupted mid-run: retried after ``delay``, attempt not counted;
        with ``history`` records (JSON), an "interrupted" history row for each."""
        params: dict[str, Any] = {
            "ids": ids,
            "worker_id": self.worker_id,
            "delay": delay,
            "message": message,
        }
        query = self._q.release_interrupted_jobs
        if history:
            params["history"] = _json_array(history)
            query = self._q.release_interrupted_jobs_history
        await self._on_pool("releasing interrupted jobs", query, params)
        self._forget(ids)

    async def reset_locked(self) -> None:
        """Unlock jobs and queues locked for more than 4 hours (crashed workers)."""
        params = {"now": self._clock.now()} if self._local_time else None
        query = self._q.reset_locked_at(local_time=self._local_time)
        await self._on_pool("resetting stale locks", query, params)

    async def _on_pinned(self, pinned: Any, what: str, query: str, params: dict[str, Any]) -> None:
        """Run a hot-path statement on a pinned connection (dropped after an error)."""
        try:
            with translate(what):
                async with self._watched(pinned, what) as conn:
                    await conn.execute(query, params, prepare=self._prepare)
        except BaseException:
            await pinned.discard()
            raise

    @asynccontextmanager
    async def _watched(self, pinned: PinnedConnection, what: str) -> AsyncIterator[Any]:
        """The pinned connection, its statements watched by :meth:`watch` in the block."""
        conn = await pinned.get()
        token = object()  # statements may share a connection (they queue on its lock)
        self._busy[token] = (pinned, what, monotonic())
        try:
            yield conn
        finally:
            del self._busy[token]

    async def watch(self) -> None:
        """Cut the connection of a hot-path statement that got no reply within
        the deadline (it then fails as a lost connection and is retried). Runs
        in the worker's task group for as long as the worker fetches."""
        period = min(5.0, self.deadline / 4)
        while True:
            await sleep(period)
            now = monotonic()
            for pinned, what, started in list(self._busy.values()):
                if now - started > self.deadline and pinned.sever():
                    logger.warning(
                        "%s got no reply within %gs; dropping that database connection",
                        what,
                        self.deadline,
                    )

    async def _on_pool(self, what: str, query: str, params: dict[str, Any] | None) -> None:
        """Run an occasional statement on a pooled connection."""
        with translate(what), fail_after(self.deadline):
            async with self._pool.connection() as conn:
                await conn.execute(query, params)

    def disown(self, ids: Any) -> None:
        """Stop holding jobs that could not be handed back: the next
        :meth:`return_strays` (before the next fetch) returns them."""
        self._forget(ids)
        self.strays_possible = True

    def _forget(self, ids: Any) -> None:
        held = self.held
        for job_id in ids:
            held.pop(job_id, None)

    async def close(self) -> None:
        """Give the pinned connections back to the pool."""
        await self._fetch_conn.release()
        await self._complete_conn.release()
        await self._fail_conn.release()


# Errors psycopg raises while loading a value it received (not I/O errors).
_LOAD_ERRORS = (psycopg.DataError, psycopg.InterfaceError, ValueError, OverflowError)


async def _read_rows(cur: Any) -> tuple[list[Any], dict[int, str]]:
    """All rows of the result, and why each row psycopg could not load failed
    (such a row is None), instead of one bad value failing the whole fetch."""
    try:
        return list(await cur.fetchall()), {}
    except _LOAD_ERRORS as first:
        logger.debug("a fetched row could not be loaded (%s); reading row by row", first)
    rows: list[Any] = []
    errors: dict[int, str] = {}
    await cur.scroll(0, mode="absolute")
    for index in range(cur.pgresult.ntuples if cur.pgresult else 0):
        try:
            rows.append(await cur.fetchone())
        except _LOAD_ERRORS as ex:
            errors[index] = _load_error(ex)
            rows.append(None)
            await cur.scroll(index + 1, mode="absolute")
    return rows, errors


def _load_error(ex: BaseException) -> str:
    if isinstance(ex, UnicodeDecodeError):
        return f"it holds text that is not valid UTF-8 ({ex.reason})"
    return first_line(ex)
