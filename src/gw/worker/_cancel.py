"""Cancel requests: act on ``cancel_jobs`` for the jobs this worker holds.

``WorkerUtils.cancel_jobs`` records a request per job a gw worker holds and
sends NOTIFY ``gw:cancel`` with the holder's worker id. The watcher here
takes (deletes) the requests for this worker's jobs when that notification
names it, when the LISTEN connection (re)connects, and every poll interval
while it holds jobs (a notification can be missed), then cancels each job:
running ones through their executor's cancel scope, fetched-but-unstarted
ones straight out of the local queue.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from ..errors import DatabaseError
from ..runtime import Notify

if TYPE_CHECKING:
    from ..runtime import Clock
    from ._dispatch import Dispatch
    from ._executing import Executors, Recorder
    from ._store import JobStore

__all__ = ("CANCEL_CHANNEL", "CancelWatcher", "names_worker")

logger = logging.getLogger("gw.worker")

CANCEL_CHANNEL = "gw:cancel"

_decode = msgspec.json.Decoder().decode


def names_worker(payload: str, worker_id: str) -> bool:
    """Whether a ``gw:cancel`` payload is for ``worker_id`` (a payload gw cannot
    read counts as yes: looking costs one query, missing it a running job)."""
    try:
        data = _decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return True
    return not isinstance(data, dict) or data.get("worker_id", worker_id) == worker_id


class CancelWatcher:
    """Takes this worker's cancel requests and cancels the jobs they name."""

    def __init__(
        self,
        store: JobStore,
        dispatch: Dispatch,
        executors: Executors,
        recorder: Recorder,
        *,
        clock: Clock,
        poll_interval: float,
    ) -> None:
        self._store = store
        self._dispatch = dispatch
        self._executors = executors
        self._recorder = recorder
        self._clock = clock
        self._poll_interval = poll_interval
        self._wake = Notify()
        self._broken = False

    def notified(self, payload: str) -> None:
        """A ``gw:cancel`` notification arrived."""
        if names_worker(payload, self._store.worker_id):
            self._wake.notify()

    def check_soon(self) -> None:
        """Look for requests now (LISTEN reconnected: notifications may be lost)."""
        self._wake.notify()

    async def run(self) -> None:
        while True:
            with self._clock.move_on_after(self._poll_interval):
                await self._wake.wait()
            if self._broken or not (self._dispatch.running or self._dispatch.buffered):
                continue
            await self.check()

    async def check(self) -> int:
        """Take this worker's requests and cancel their jobs; how many were cancelled."""
        try:
            requests = await self._store.claim_cancel_requests()
        except DatabaseError as ex:
            if ex.sqlstate == "42P01":  # undefined_table: gw's track 0002 is missing
                self._broken = True
                logger.error(
                    "cannot read cancel requests (%s): run `gw migrate` to install gw's "
                    "tables; jobs of this worker cannot be cancelled until then",
                    ex,
                )
            else:
                logger.warning("reading cancel requests failed: %s; trying again", ex)
            return 0
        cancelled = 0
        for job_id, reason in requests:
            if self._executors.cancel(job_id, reason):
                cancelled += 1
                continue
            job = self._executors.discard(job_id, reason)
            if job is not None:
                cancelled += 1
                await self._recorder.cancelled_hook(job, reason, 0.0)
            # Otherwise the job ended meanwhile: its own outcome stands.
        return cancelled
