"""A supervisor for several worker processes (``gw worker --processes N``).

One Python process runs one event loop, so CPU-bound handlers (and the GIL)
cap a worker at about one core. The supervisor starts N identical worker
processes, each with its own worker id, and:

- forwards SIGINT/SIGTERM to all of them (the first asks each worker for a
  graceful stop, a second one for an immediate one, as for a single worker);
- restarts a child that exits without being asked to, after a backoff that
  grows while it keeps crashing;
- gives up, stops the others and exits non-zero when children crash more than
  ``max_crashes`` times within ``crash_window`` seconds.

Children run in their own session, so a terminal's Ctrl-C reaches only the
supervisor, which forwards it once.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..runtime import Event, move_on_after, open_signal_receiver, open_task_group

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ("ProcessSupervisor", "child_command", "run_processes")

logger = logging.getLogger("gw.worker")

_RESTART_MIN = 1.0
_RESTART_MAX = 30.0


@dataclass
class ProcessSupervisor:
    """Runs ``processes`` copies of ``command`` until stopped (see the module docstring)."""

    command: Sequence[str]
    processes: int
    max_crashes: int = 5
    crash_window: float = 60.0
    _stop: Event = field(default_factory=Event, init=False)
    _signals: int = field(default=0, init=False)
    _children: dict[int, Any] = field(default_factory=dict, init=False)
    _crashes: list[float] = field(default_factory=list, init=False)
    failed: str | None = field(default=None, init=False)
    """Why the supervisor gave up (None: it stopped as asked)."""

    def __post_init__(self) -> None:
        if isinstance(self.processes, bool) or not isinstance(self.processes, int):
            raise ConfigurationError(f"processes must be an integer, got {self.processes!r}")
        if not 1 <= self.processes <= 256:
            raise ConfigurationError(f"processes must be between 1 and 256, got {self.processes}")

    async def run(self) -> int:
        """Run until the children stop; the exit code for the supervisor's process."""
        async with open_task_group() as tg:
            tg.start_soon(self._watch_signals)
            async with open_task_group() as slots:
                for slot in range(self.processes):
                    slots.start_soon(self._slot, slot)
            tg.cancel_scope.cancel()
        if self.failed is not None:
            logger.error("worker processes keep crashing; giving up: %s", self.failed)
            return 1
        return 0

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Forward ``signum`` to every child (the first call also stops restarts)."""
        self._stop.set()
        for process in list(self._children.values()):
            if process.returncode is None:
                try:
                    process.send_signal(signum)
                except ProcessLookupError:  # already gone
                    pass

    async def _watch_signals(self) -> None:
        try:
            receiver = open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except (RuntimeError, ValueError, NotImplementedError):
            return  # not the main thread: the caller stops us with stop()
        with receiver as signals:
            async for signum in signals:
                self._signals += 1
                how = "gracefully" if self._signals == 1 else "immediately"
                logger.warning(
                    "%s received: stopping %d worker process(es) %s",
                    signal.Signals(signum).name,
                    len(self._children),
                    how,
                )
                self.stop(signum)

    async def _slot(self, slot: int) -> None:
        from anyio import open_process

        delay = _RESTART_MIN
        while not self._stop.is_set():
            started = time.monotonic()
            process = await open_process(
                list(self.command), stdin=None, stdout=None, stderr=None, start_new_session=True
            )
            self._children[slot] = process
            logger.info("worker process %d started (pid %d)", slot, process.pid)
            try:
                code = await process.wait()
            finally:
                self._children.pop(slot, None)
            if self._stop.is_set():
                if code not in (0, None):
                    logger.warning("worker process %d stopped with exit code %s", slot, code)
                return
            if code == 0:
                logger.info("worker process %d finished (pid %d)", slot, process.pid)
                return  # e.g. --once: nothing left to do in this slot
            now = time.monotonic()
            self._crashes = [t for t in self._crashes if now - t < self.crash_window]
            self._crashes.append(now)
            what = f"worker process {slot} (pid {process.pid}) exited with code {code}"
            if len(self._crashes) > self.max_crashes:
                self.failed = f"{what}; {len(self._crashes)} crashes within {self.crash_window:g} s"
                self.stop()
                return
            if now - started > self.crash_window:
                delay = _RESTART_MIN  # it had been running fine for a while
            logger.error("%s; restarting it in %g s", what, delay)
            with move_on_after(delay):
                await self._stop.wait()  # a stop cuts the wait short
            delay = min(delay * 2, _RESTART_MAX)


def child_command(gw_args: Sequence[str]) -> list[str]:
    """``python -m gw ARGS`` with this interpreter."""
    return [sys.executable, "-m", "gw", *gw_args]


def run_processes(
    factory: Callable[[], Any] | str,
    processes: int,
    *,
    backend: str | None = None,
    max_crashes: int = 5,
) -> int:
    """Run ``processes`` worker processes, each ``factory()`` (a ``gw.Worker``), until
    SIGINT/SIGTERM; return the exit code (non-zero when children kept crashing).

    ``factory`` is ``"module:function"`` or a function defined at the top level of
    an importable module (children import it by name). ``backend``: the children's
    event loop, trio when it is installed, else asyncio.
    """
    from importlib.util import find_spec

    import anyio

    if backend is None:
        backend = "trio" if find_spec("trio") is not None else "asyncio"
    if backend not in ("trio", "asyncio"):
        raise ConfigurationError(f"backend must be 'trio' or 'asyncio', got {backend!r}")
    target = factory if isinstance(factory, str) else _import_path(factory)
    if ":" not in target:
        raise ConfigurationError(f"factory must be 'module:function', got {target!r}")
    command = [sys.executable, "-m", "gw.worker._child", target, backend]
    supervisor = ProcessSupervisor(command, processes, max_crashes=max_crashes)
    return int(anyio.run(supervisor.run, backend=backend))


def _import_path(factory: Callable[[], Any]) -> str:
    module = getattr(factory, "__module__", None)
    name = getattr(factory, "__qualname__", "")
    if not module or module == "__main__" or "<" in name:
        raise ConfigurationError(
            "run_processes needs a factory its child processes can import: define it at the "
            "top level of a module (not __main__, not inside a function) or pass "
            "'module:function'"
        )
    return f"{module}:{name}"
