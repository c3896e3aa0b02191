"""When to fetch the jobs of fleet-wide limited keys (pure: callers pass the time).

Jobs of a task with ``rate_limit``/``max_concurrency``, and jobs of a named
queue in ``Worker(queue_limits=...)``, are never fetched by the worker's
main fetch: each key has its own fetch, run under the key's lock in the
database, that takes at most what the limit grants and at most the worker's
free slots (so a job waiting for its rate never holds a lock or a slot).
:class:`FleetLimits` decides which keys to fetch and when to look again:

* the limit granted fewer jobs than there were free slots: the key is
  *blocked* until a token is due (rate) or a while later (concurrency; a job
  of the key ending here looks again at once);
* the fetch found fewer jobs than granted: the key is *idle* until new jobs
  are announced (NOTIFY) or the poll interval passes;
* otherwise the key is due again as soon as slots free up.

A job of a limited task in a limited queue obeys the queue's limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.limits import KeyLimit, token_wait

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..types import Job

__all__ = ("FleetLimits", "KeyState")

# A concurrency-limited key held full by other workers is looked at again
# after this long at most (their completions send no notification).
_CONCURRENCY_RECHECK = 0.5
# Another worker held the key's lock: it is taking what the limit allows now.
_BUSY_RETRY = 0.01


class KeyState:
    """One limited key and when this worker fetches it next."""

    __slots__ = (
        "blocked",
        "idle_at",
        "idle_generation",
        "limit",
        "next_at",
        "released",
        "task_id",
    )

    def __init__(self, limit: KeyLimit) -> None:
        self.limit = limit
        self.task_id: int | None = None
        """The task's id in ``_private_tasks`` (task keys; set once registered)."""
        self.next_at = 0.0
        self.blocked = False
        """The limit (not the lack of jobs) stopped the last fetch."""
        self.idle_generation: int | None = None
        self.idle_at = 0.0
        self.released = False
        """A job of the key ended here and its outcome is not written yet."""


class FleetLimits:
    """The limited keys of one worker and their fetch schedule."""

    def __init__(self, limits: Iterable[KeyLimit], *, poll_interval: float) -> None:
        self.keys = [KeyState(limit) for limit in limits]
        self._poll_interval = poll_interval
        self._by_task = {s.limit.name: s for s in self.keys if s.limit.kind == "task"}
        self._by_queue = {s.limit.name: s for s in self.keys if s.limit.kind == "queue"}

    @property
    def limited_queues(self) -> list[str]:
        """Named queues the main fetch leaves out."""
        return sorted(self._by_queue)

    @property
    def limited_tasks(self) -> set[str]:
        """Task identifiers the main fetch leaves out."""
        return set(self._by_task)

    def set_task_ids(self, ids: dict[str, int]) -> None:
        for name, state in self._by_task.items():
            state.task_id = ids.get(name)

    def due(self, now: float, generation: int) -> list[KeyState]:
        """The keys to fetch now; ``generation`` counts new-job announcements."""
        out = []
        for state in self.keys:
            if now < state.next_at:
                continue
            idle = state.idle_generation
            if idle is not None:
                if idle == generation and now < state.idle_at + self._poll_interval:
                    continue
                state.idle_generation = None
            out.append(state)
        return out

    def next_at(self) -> float | None:
        """The earliest time a blocked key may be fetched again (None: none is blocked)."""
        times = [s.next_at for s in self.keys if s.blocked]
        return min(times) if times else None

    def idle_until(self) -> float | None:
        """When the earliest idle key is polled again."""
        times = [s.idle_at for s in self.keys if s.idle_generation is not None]
        return min(times) + self._poll_interval if times else None

    def fetched(
        self,
        state: KeyState,
        *,
        asked: int,
        granted: int | None,
        got: int,
        tokens: float,
        now: float,
        generation: int,
    ) -> None:
        """Plan the key's next fetch from what this one asked, was granted and got.

        ``tokens``: what the bucket holds after this fetch (rate limits);
        ``granted`` None: another worker was fetching the key (try again soon).
        """
        if granted is None:
            state.blocked = True
            state.next_at = now + _BUSY_RETRY
            return
        if got < granted:
            # Fewer jobs than allowed: nothing more to take until jobs are added.
            state.blocked = False
            state.next_at = 0.0
            state.idle_generation, state.idle_at = generation, now
            return
        state.idle_generation = None
        if granted >= asked:
            state.blocked = False
            state.next_at = 0.0  # slots were the limit: due when one frees up
            return
        state.blocked = True
        wait = token_wait(state.limit, tokens)
        if wait <= 0:
            wait = _CONCURRENCY_RECHECK
        state.next_at = now + wait

    def job_finished(self, job: Job) -> None:
        """A job ended here: its slot frees once its outcome is written (:meth:`written`)."""
        state = None
        if job.queue_name is not None:
            state = self._by_queue.get(job.queue_name)
        if state is None:
            state = self._by_task.get(job.task_identifier)
        if state is not None and state.limit.max_concurrency is not None:
            state.released = True

    def written(self) -> None:
        """Finished jobs' outcomes were written: keys held full by their
        concurrency limit, with a job that ended here, look again now."""
        for state in self.keys:
            if state.released:
                state.released = False
                if state.blocked:
                    state.next_at = 0.0

    @property
    def waiting(self) -> bool:
        """A key has jobs its limit holds back (run_once waits for them)."""
        return any(s.blocked for s in self.keys)
