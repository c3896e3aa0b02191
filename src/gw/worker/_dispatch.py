"""The worker's local queue: fetched jobs, the order they start in, named-queue turns.

Pure and synchronous (no I/O, no event loop, no clock: callers pass the
time), so it is unit-tested as a state machine. The fetcher adds what it
locked, executors take jobs and report them finished, shutdown takes back
whatever has not started.

Order: jobs start in ``(priority, run_at, id)`` order, the order the
database would hand them out one by one, whatever order a fetch returned
them in. A named queue runs one job at a time: its first job is ready, the
others wait behind it in order and become ready one at a time as their
predecessor finishes. The queue stays locked in the database across those
turns (:meth:`Dispatch.finish` says so) and is unlocked with the last one.
"""

from __future__ import annotations

from bisect import insort
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from ..types import Job

__all__ = ("Dispatch", "Entry", "Unclaimed")

Entry = tuple["Job", Any, "str | None"]
"""A fetched job: the job, its payload's JSON text, and why it cannot run
(None when it can: a payload that does not decode fails the job instead)."""

_Item = tuple[int, "datetime", int, Entry]


def _item(entry: Entry) -> _Item:
    job = entry[0]
    return (job.priority, job.run_at, job.id, entry)


class Unclaimed(NamedTuple):
    """Fetched jobs that never started, to hand back to the database."""

    ids: list[int]
    keep_queue_locked: list[int]
    """Those of ``ids`` whose named queue must stay locked: another job of the
    queue is still running here, and its completion unlocks the queue."""


class Dispatch:
    """Jobs fetched by one worker and not yet finished."""

    __slots__ = (
        "_active",
        "_buffered",
        "_head",
        "_ready",
        "_waiting",
        "buffered_since",
        "running",
        "stopping",
    )

    def __init__(self) -> None:
        # Ready jobs, sorted; _ready[_head:] are still to start. A sorted list
        # read from the front: fetches arrive sorted and mostly after what is
        # buffered, so starting a job costs an index step, not a heap pop.
        self._ready: list[_Item] = []
        self._head = 0
        self._waiting: dict[int, list[_Item]] = {}  # per queue id, sorted, behind its running job
        self._active: set[int] = set()  # queues with a job ready or running here
        self._buffered = 0
        self.running = 0
        """Jobs taken and not yet finished."""
        self.buffered_since: float | None = None
        """When the buffer last went from empty to non-empty (for the local queue's TTL)."""
        self.stopping = False
        """Once set, a finishing job no longer hands its queue to the next job."""

    @property
    def buffered(self) -> int:
        """Jobs fetched and not yet started (ready or waiting for their queue)."""
        return self._buffered

    @property
    def ready(self) -> int:
        """Jobs that may start now."""
        return len(self._ready) - self._head

    def add(self, entries: Iterable[Entry], now: float) -> None:
        """Take in a fetch's jobs (in any order) at time ``now``."""
        items = sorted(map(_item, entries))
        if not items:
            return
        waiting, active = self._waiting, self._active
        fresh: list[_Item] = []
        for item in items:
            qid = item[3][0].job_queue_id
            if qid is not None:
                if qid in active:
                    insort(waiting.setdefault(qid, []), item)
                    continue
                active.add(qid)
            fresh.append(item)
        self._make_ready(fresh)
        if self._buffered == 0:
            self.buffered_since = now
        self._buffered += len(items)

    def _make_ready(self, fresh: list[_Item]) -> None:
        """Add sorted items to the ready list, keeping it sorted."""
        if not fresh:
            return
        ready, head = self._ready, self._head
        if head >= len(ready):
            self._ready, self._head = fresh, 0
        elif fresh[0] >= ready[-1]:
            ready.extend(fresh)  # the common case: later jobs after earlier ones
        else:
            merged = ready[head:]
            merged.extend(fresh)
            merged.sort()  # two sorted runs: a linear merge
            self._ready, self._head = merged, 0

    def take(self) -> Entry | None:
        """The next job to start (counted as running), or None."""
        ready, head = self._ready, self._head
        if head >= len(ready):
            return None
        entry = ready[head][3]
        head += 1
        if head == len(ready):
            self._ready, self._head = [], 0
        elif head > 1024 and head * 2 > len(ready):
            del ready[:head]  # drop what started, now and then
            self._head = 0
        else:
            self._head = head
        self._buffered -= 1
        if self._buffered == 0:
            self.buffered_since = None
        self.running += 1
        return entry

    def finish(self, job: Job) -> bool:
        """A running job ended; True if its queue stays locked for the next job here."""
        self.running -= 1
        qid = job.job_queue_id
        if qid is None:
            return False
        waiting = self._waiting.get(qid)
        if waiting and not self.stopping:
            item = waiting.pop(0)
            if not waiting:
                del self._waiting[qid]
            if self._head >= len(self._ready):
                self._ready, self._head = [item], 0
            else:
                insort(self._ready, item, lo=self._head)
            return True
        self._active.discard(qid)
        return False

    def discard(self, job_id: int) -> tuple[Entry, bool] | None:
        """Take a job that has not started out of the buffer (it was cancelled).

        Returns its entry and whether its named queue must stay locked (a job
        of the queue is still here), or None when the job is not buffered.
        """
        ready = self._ready
        for index in range(self._head, len(ready)):
            if ready[index][2] == job_id:
                entry = ready.pop(index)[3]
                self._removed()
                qid = entry[0].job_queue_id
                if qid is None:
                    return entry, False
                # It was its queue's turn: the next job of the queue takes it.
                waiting = self._waiting.get(qid)
                if waiting:
                    item = waiting.pop(0)
                    if not waiting:
                        del self._waiting[qid]
                    insort(self._ready, item, lo=self._head)
                    return entry, True
                self._active.discard(qid)
                return entry, False
        for qid, items in self._waiting.items():
            for index, item in enumerate(items):
                if item[2] == job_id:
                    del items[index]
                    if not items:
                        del self._waiting[qid]
                    self._removed()
                    # Behind another job of its queue: that one holds the queue.
                    return item[3], True
        return None

    def _removed(self) -> None:
        self._buffered -= 1
        if self._buffered == 0:
            self.buffered_since = None
        if self._head >= len(self._ready):
            self._ready, self._head = [], 0

    def unclaimed(self) -> Unclaimed:
        """Remove and return every job that has not started."""
        entries = [item[3] for item in self._ready[self._head :]]
        # A queue whose head is unstarted is unlocked with the returned jobs;
        # one whose head is running stays locked until that job ends.
        unstarted_heads = {entry[0].job_queue_id for entry in entries}
        running_queues = self._active - unstarted_heads
        for items in self._waiting.values():
            entries.extend(item[3] for item in items)
        self._ready, self._head = [], 0
        self._waiting = {}
        self._active = running_queues
        self._buffered = 0
        self.buffered_since = None
        return Unclaimed(
            [entry[0].id for entry in entries],
            [entry[0].id for entry in entries if entry[0].job_queue_id in running_queues],
        )

    def expires_at(self, ttl: float) -> float | None:
        """When the oldest buffered jobs outstay ``ttl`` (None with nothing buffered)."""
        since = self.buffered_since
        return None if since is None else since + ttl

    def __repr__(self) -> str:
        return (
            f"<Dispatch ready={self.ready} buffered={self._buffered} "
            f"running={self.running} queues={len(self._active)}>"
        )
