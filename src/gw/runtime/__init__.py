"""gw.runtime: the anyio building blocks every other gw layer uses.

This is gw's equivalent of the Rust port's runtime crate: channels, a Notify,
locks, task groups, sleeping, intervals and timeouts, plus a :class:`Clock`
that tests can replace. Only this package (and ``gw.db.connection``) may
import anyio's backends, asyncio or trio; everything above it is
backend-neutral and runs unchanged on both loops.
"""

from __future__ import annotations

from anyio import (
    TASK_STATUS_IGNORED as TASK_STATUS_IGNORED,
    BrokenResourceError as BrokenResourceError,
    CancelScope as CancelScope,
    CapacityLimiter as CapacityLimiter,
    ClosedResourceError as ClosedResourceError,
    EndOfStream as EndOfStream,
    Event as Event,
    Lock as Lock,
    Semaphore as Semaphore,
    WouldBlock as WouldBlock,
    create_task_group as open_task_group,
    create_tcp_listener as create_tcp_listener,
    current_time as current_time,
    fail_after as fail_after,
    get_cancelled_exc_class as get_cancelled_exc_class,
    getaddrinfo as getaddrinfo,
    move_on_after as move_on_after,
    open_signal_receiver as open_signal_receiver,
    sleep as sleep,
    sleep_forever as sleep_forever,
    sleep_until as sleep_until,
    to_thread as to_thread,
    wait_all_tasks_blocked as wait_all_tasks_blocked,
)
from anyio.abc import TaskGroup as TaskGroup, TaskStatus as TaskStatus
from anyio.lowlevel import checkpoint as checkpoint
from anyio.streams.memory import (
    MemoryObjectReceiveStream as Receiver,
    MemoryObjectSendStream as Sender,
)

from ._backend import Backend as Backend, current_backend as current_backend
from ._bridge import AsyncioBridge as AsyncioBridge, open_asyncio_bridge as open_asyncio_bridge
from ._clock import Clock as Clock, FakeClock as FakeClock, SystemClock as SystemClock
from ._sync import Notify as Notify, ParkingLot as ParkingLot, channel as channel
from ._time import Interval as Interval, seconds as seconds

__all__ = (
    "TASK_STATUS_IGNORED",
    "AsyncioBridge",
    "Backend",
    "BrokenResourceError",
    "CancelScope",
    "CapacityLimiter",
    "Clock",
    "ClosedResourceError",
    "EndOfStream",
    "Event",
    "FakeClock",
    "Interval",
    "Lock",
    "Notify",
    "ParkingLot",
    "Receiver",
    "Semaphore",
    "Sender",
    "SystemClock",
    "TaskGroup",
    "TaskStatus",
    "WouldBlock",
    "channel",
    "checkpoint",
    "create_tcp_listener",
    "current_backend",
    "current_time",
    "fail_after",
    "get_cancelled_exc_class",
    "getaddrinfo",
    "move_on_after",
    "open_asyncio_bridge",
    "open_signal_receiver",
    "open_task_group",
    "seconds",
    "sleep",
    "sleep_forever",
    "sleep_until",
    "to_thread",
    "wait_all_tasks_blocked",
)
