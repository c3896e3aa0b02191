"""What a handler gets besides its payload."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import threading

    from ..core.utils import WorkerUtils
    from ..types import Job

__all__ = ("Extensions", "JobContext", "JobLogger")

JOB_LOGGER = logging.getLogger("gw.job")
"""The logger behind every ``ctx.logger`` (configure it to route task logs)."""


class JobLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """``ctx.logger``: the ``gw.job`` logger with the job in every record.

    Records carry ``job_id``, ``task_identifier``, ``attempt`` and ``worker_id``
    as attributes (for structured handlers) and ``gw_job``, a short label
    that gw's CLI log format appends to the message. ``extra=`` given to a
    call adds to them.
    """

    def __init__(self, logger: logging.Logger, job: Job, worker_id: str) -> None:
        super().__init__(
            logger,
            {
                "job_id": job.id,
                "task_identifier": job.task_identifier,
                "attempt": job.attempts,
                "worker_id": worker_id,
                "gw_job": (
                    f"job {job.id} {job.task_identifier} attempt {job.attempts}, worker {worker_id}"
                ),
            },
        )

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        given = kwargs.get("extra")
        kwargs["extra"] = {**self.extra, **given} if given else self.extra  # type: ignore[dict-item]
        return msg, kwargs


T = TypeVar("T")


class Extensions(Mapping[Any, Any]):
    """Read-only application state for handlers, keyed by type or by name.

    ``Worker(extensions={Database: db, "settings": settings})`` then
    ``ctx.extensions.get_instance(Database)`` or ``ctx.extensions["settings"]``.
    A value keyed by its own type may also be given bare: ``extensions=[db]``.
    """

    def __init__(self, values: Mapping[Any, Any] | Sequence[Any] | None = None):
        data: dict[Any, Any] = {}
        if isinstance(values, Mapping):
            data.update(values)
        elif values:
            for value in values:
                data[type(value)] = value
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get_instance(self, kind: type[T]) -> T:
        """The value registered under type ``kind`` (KeyError naming it if missing)."""
        try:
            value = self._data[kind]
        except KeyError:
            raise KeyError(f"no extension registered for {kind.__name__}") from None
        return value  # type: ignore[no-any-return]


class JobContext:
    """Per-job context passed to handlers that take a second parameter."""

    __slots__ = ("_cancelled", "extensions", "job", "logger", "utils", "worker_id")

    def __init__(
        self,
        job: Job,
        worker_id: str,
        extensions: Extensions,
        utils: WorkerUtils,
        logger: logging.Logger = JOB_LOGGER,
    ) -> None:
        self.job = job
        self.worker_id = worker_id
        self.extensions = extensions
        self.utils = utils
        self.logger = JobLogger(logger, job, worker_id)
        """Logs with the job's id, task, attempt and worker id attached (``gw.job``)."""
        self._cancelled: threading.Event | None = None

    @property
    def payload(self) -> Any:
        """The job's payload as plain JSON values."""
        return self.job.payload

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self.job.attempts

    def is_cancelled(self) -> bool:
        """For sync handlers (in threads): True once the worker gave up on this job
        (timeout or shutdown); check it in long loops and return early."""
        return self._cancelled is not None and self._cancelled.is_set()

    def __repr__(self) -> str:
        return f"<JobContext job={self.job.id} task={self.job.task_identifier!r}>"
