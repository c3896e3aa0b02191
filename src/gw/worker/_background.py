"""Background tasks of a running worker: LISTEN, the stale-lock reset, OS
signals, the shutdown trigger, and the BeforeJobSchedule hook for utils."""

from __future__ import annotations

import logging
import random
import signal
from typing import TYPE_CHECKING, Any

import psycopg

from ..core import hooks as h
from ..db.listen import Listener
from ..errors import GwError
from ..runtime import Event, open_signal_receiver
from ._state import WorkerState, notification_count

if TYPE_CHECKING:
    from ..types import JobSpec

logger = logging.getLogger("gw.worker")


class BackgroundMixin(WorkerState):
    """Long-running helpers that live in the worker's task group."""

    async def _listen_loop(self, url: str) -> None:
        def on_connect() -> None:
            # Jobs may have been added while we were not listening.
            self._maybe_more = True
            self._fetch_notify.notify()

        while True:
            try:
                async with Listener(url, ["jobs:insert"], on_connect=on_connect) as listener:
                    async for note in listener:
                        count = notification_count(note.payload)
                        if count > 0:
                            self._notifications += count
                            self._maybe_more = True
                            self._fetch_notify.notify()
            except GwError as ex:
                logger.warning(
                    "cannot LISTEN for new jobs (%s); polling every %gs meanwhile",
                    ex,
                    self.poll_interval,
                )
                await self.clock.sleep(max(self.poll_interval, 1.0))

    async def _reset_locked_loop(self) -> None:
        assert self.reset_locked_interval is not None
        assert self._pool is not None
        low, high = self.reset_locked_interval
        await self.clock.sleep(random.random() * min(60.0, high))
        while True:
            params = {"now": self.clock.now()} if self.use_local_time else None
            try:
                async with self._pool.connection() as conn:
                    await conn.execute(
                        self.queries.reset_locked_at(local_time=self.use_local_time), params
                    )
            except (psycopg.Error, GwError) as ex:
                logger.warning("resetting stale locks failed: %s", ex)
            await self.clock.sleep(low + random.random() * (high - low))

    async def _signal_loop(self) -> None:
        try:
            receiver = open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except (RuntimeError, ValueError, NotImplementedError):
            return  # not the main thread (or no signal support): nothing to listen to
        with receiver as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self._shutdown_requested.is_set():
                    logger.warning("%s again: stopping now, interrupting running jobs", name)
                    self.shutdown(name, graceful=False)
                else:
                    logger.warning(
                        "%s received: shutting down gracefully (again to stop at once)", name
                    )
                    self.shutdown(name)

    async def _trigger_loop(self) -> None:
        trigger = self._shutdown_trigger
        if isinstance(trigger, Event):
            await trigger.wait()
        elif trigger is not None:
            await trigger()
        self.shutdown("shutdown trigger")

    async def _before_schedule(
        self, identifier: str, payload: Any, spec: JobSpec
    ) -> tuple[str, Any, JobSpec]:
        decision = await self.hooks.intercept(h.BeforeJobSchedule(identifier, payload, spec))
        if isinstance(decision, h.Skip):
            from ..errors import JobScheduleSkipped

            raise JobScheduleSkipped(f"a BeforeJobSchedule hook skipped job {identifier!r}")
        if isinstance(decision, h.Fail):
            from ..errors import HookError

            raise HookError(
                f"a BeforeJobSchedule hook refused job {identifier!r}: {decision.message}"
            )
        if isinstance(decision, h.Rewrite):
            replace = decision.replace_payload and decision.payload is not None
            new_payload = decision.payload if replace else payload
            if isinstance(payload, list) and (not isinstance(new_payload, list) or not new_payload):
                from ..errors import HookError

                raise HookError(
                    f"a BeforeJobSchedule hook must keep batch job {identifier!r}'s payload a "
                    "non-empty JSON array"
                )
            return (decision.identifier or identifier, new_payload, decision.spec or spec)
        return identifier, payload, spec
