"""What a handler gets besides its payload."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import logging
    import threading

    from ..core.utils import WorkerUtils
    from ..types import Job

__all__ = ("Extensions", "JobContext")

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
        logger: logging.Logger,
    ) -> None:
        self.job = job
        self.worker_id = worker_id
        self.extensions = extensions
        self.utils = utils
        self.logger = logger
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
