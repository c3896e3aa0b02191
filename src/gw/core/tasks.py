"""Task handlers: ``@gw.task``, ``@gw.batch_task`` and payload decoding.

A task is a function plus a task identifier. Its first parameter's
annotation is the payload type: a ``msgspec.Struct`` (or anything msgspec can
decode JSON into) gives typed payloads, ``Any``/no annotation gives the raw
JSON value. An optional second parameter receives the :class:`JobContext`.
``async def`` handlers run on the event loop; plain ``def`` handlers run in a
worker thread.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, ParamSpec, TypedDict, TypeVar, Unpack, overload

import msgspec

from ..errors import ConfigurationError, InvalidJobSpec, PayloadError, TaskNotFound
from ..types import JobKeyMode, JobSpec, check_identifier
from ._json import describe_decode_error
from .limits import RateLimit, check_max_concurrency
from .retry import Retry

__all__ = (
    "BatchItemFailed",
    "Task",
    "TaskOptions",
    "TaskOptionsDict",
    "TaskRegistry",
    "batch_task",
    "task",
)

P = ParamSpec("P")
R = TypeVar("R")

_generic_decoder = msgspec.json.Decoder()


class BatchItemFailed(Exception):
    """Return (or raise inside a per-item helper) to fail one item of a batch."""


@dataclass(eq=False)
class Task(Generic[P, R]):
    """A registered job handler. Calling it calls the wrapped function."""

    identifier: str
    fn: Callable[P, R]
    payload_type: Any = Any
    takes_context: bool = False
    is_async: bool = True
    is_batch: bool = False
    timeout: float | None = None
    """Per-task timeout in seconds (overrides the worker's ``job_timeout``)."""
    defaults: JobSpec | None = None
    """Job fields used when a job of this task is added through gw without them."""
    retry: Retry | None = None
    """This task's retry policy (None: the worker's)."""
    loop: Literal["asyncio"] | None = None
    """``"asyncio"``: an async handler that needs asyncio (run through trio-asyncio
    on a trio worker); None: it runs on whichever loop the worker runs."""
    rate_limit: RateLimit | None = None
    """At most so many of this task's jobs start per period, across every gw worker."""
    max_concurrency: int | None = None
    """At most this many of this task's jobs run at once, across every gw worker."""
    _decoder: msgspec.json.Decoder[Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_identifier(self.identifier)
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigurationError(f"task {self.identifier!r}: timeout must be positive")
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise ConfigurationError(
                f"task {self.identifier!r}: retry must be a gw.Retry(...), got {self.retry!r}"
            )
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise ConfigurationError(
                f"task {self.identifier!r}: rate_limit must be a gw.RateLimit(...), "
                f"got {self.rate_limit!r}"
            )
        check_max_concurrency(self.max_concurrency, f"task {self.identifier!r}:")
        if self.loop is not None:
            if self.loop != "asyncio":
                raise ConfigurationError(
                    f"task {self.identifier!r}: loop must be 'asyncio' or None, got {self.loop!r}"
                )
            if not self.is_async:
                raise ConfigurationError(
                    f"task {self.identifier!r}: loop='asyncio' is for async def handlers; "
                    "a plain def handler runs in a thread on either loop"
                )
        if self.is_batch:
            # Decode the array's items lazily, keeping each item's raw JSON so
            # that failed items can be retried byte for byte.
            self._decoder = msgspec.json.Decoder(list[msgspec.Raw])
        elif self.payload_type is Any:
            self._decoder = _generic_decoder
        else:
            try:
                self._decoder = msgspec.json.Decoder(self.payload_type)
            except TypeError as ex:
                raise ConfigurationError(
                    f"task {self.identifier!r}: payload type {self.payload_type!r} cannot be "
                    f"decoded from JSON by msgspec ({ex})"
                ) from None
        if self.is_batch and self.payload_type is not Any:
            self._item_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.payload_type)
        else:
            self._item_decoder = _generic_decoder

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def decode(self, payload_json: str | bytes) -> Any:
        """Decode a job payload for this task; :class:`PayloadError` if it does not fit."""
        try:
            return self._decoder.decode(payload_json)
        except msgspec.ValidationError as ex:
            raise PayloadError(
                f"invalid payload for task {self.identifier!r}: {_describe(ex)}"
            ) from None
        except Exception as ex:  # not JSON msgspec can read: too deep, bad text, ...
            raise PayloadError(
                f"task {self.identifier!r}: {describe_decode_error(ex, payload_json)}"
            ) from None

    def decode_items(self, raw_items: Sequence[msgspec.Raw]) -> list[Any]:
        """Decode the items of a batch payload (all must fit)."""
        out = []
        for index, raw in enumerate(raw_items):
            try:
                out.append(self._item_decoder.decode(raw))
            except msgspec.ValidationError as ex:
                raise PayloadError(
                    f"invalid item #{index} in batch payload for task {self.identifier!r}: "
                    f"{_describe(ex)}"
                ) from None
            except Exception as ex:
                raise PayloadError(
                    f"item #{index} in batch payload for task {self.identifier!r}: "
                    f"{describe_decode_error(ex, bytes(raw))}"
                ) from None
        return out


def _describe(ex: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `str`, got `int` - at `$.to`"; make the path explicit.
    text = str(ex)
    if " - at `" in text:
        message, _, path = text.partition(" - at `")
        path = path.rstrip("`")
        field_name = path.removeprefix("$.").removeprefix("$") or "payload"
        return f"field {field_name!r}: {message[0].lower()}{message[1:]}"
    return text


def _analyse(
    fn: Callable[..., Any], *, batch: bool, localns: Mapping[str, Any] | None = None
) -> tuple[Any, bool]:
    """(payload type, takes context) from the handler's signature."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as ex:
        raise ConfigurationError(f"cannot inspect handler {fn!r}: {ex}") from None
    params = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    name = getattr(fn, "__qualname__", repr(fn))
    if not params or len(params) > 2:
        raise ConfigurationError(
            f"handler {name} must take (payload) or (payload, ctx); "
            f"it takes {len(params)} positional parameter(s)"
        )
    try:
        # localns: the scope the decorator ran in, so types defined inside a
        # function (common in tests and factories) resolve too.
        hints = typing.get_type_hints(fn, localns=dict(localns) if localns else None)
    except Exception as ex:
        raise ConfigurationError(
            f"cannot resolve the type annotations of handler {name} ({ex}); define the "
            "payload type where the handler can see it (e.g. at module level)"
        ) from None
    annotation = hints.get(params[0].name, Any)
    if batch:
        origin = typing.get_origin(annotation)
        if annotation is Any or annotation is list:
            annotation = Any
        elif origin in (list, Sequence):
            args = typing.get_args(annotation)
            annotation = args[0] if args else Any
        else:
            raise ConfigurationError(
                f"batch handler {name} must take a list of items (e.g. items: list[MyItem]), "
                f"not {annotation!r}"
            )
    return annotation, len(params) == 2


class TaskOptionsDict(TypedDict, total=False):
    """The keyword options of :func:`task`, :func:`batch_task` and ``Worker.define_job``."""

    timeout: float | None
    queue_name: str | None
    max_attempts: int | None
    priority: int | None
    job_key_mode: JobKeyMode | None
    retry: Retry | None
    loop: Literal["asyncio"] | None
    rate_limit: RateLimit | None
    max_concurrency: int | None


@overload
def task(identifier: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    identifier: str | None = None, /, **options: Unpack[TaskOptionsDict]
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    identifier: str | Callable[P, R] | None = None, /, **options: Unpack[TaskOptionsDict]
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Register a function as a job handler.

    ``@gw.task`` uses the function name as identifier; ``@gw.task("send_email",
    timeout=30)`` sets it (and a per-job timeout in seconds). ``queue_name``,
    ``max_attempts``, ``priority`` and ``job_key_mode`` are this task's job
    defaults wherever gw adds its jobs (an explicit JobSpec field wins);
    ``retry`` is its :class:`~gw.Retry` policy; ``loop="asyncio"`` runs an
    asyncio-only handler through trio-asyncio on a trio worker;
    ``rate_limit`` (:class:`~gw.RateLimit`) and ``max_concurrency`` limit its
    jobs across every gw worker on the database.
    """
    parsed = TaskOptions.of(options)
    if callable(identifier):
        return _make(identifier, None, parsed, batch=False, localns=_caller_locals())

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        return _make(fn, identifier, parsed, batch=False, localns=_caller_locals())

    return decorate


def batch_task(
    identifier: str | None = None, /, **options: Unpack[TaskOptionsDict]
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Register a batch handler: it receives the list of items of a JSON-array payload
    and returns one result per item (None for success, an exception for failure).
    Failed items are retried as a new, smaller batch. Options as for :func:`task`."""
    parsed = TaskOptions.of(options)

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        return _make(fn, identifier, parsed, batch=True, localns=_caller_locals())

    return decorate


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """The options of ``@gw.task`` beyond the identifier."""

    timeout: float | None = None
    queue_name: str | None = None
    max_attempts: int | None = None
    priority: int | None = None
    job_key_mode: JobKeyMode | None = None
    retry: Retry | None = None
    loop: Literal["asyncio"] | None = None
    rate_limit: RateLimit | None = None
    max_concurrency: int | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> TaskOptions:
        """Options from keyword arguments, naming any unknown one."""
        unknown = sorted(set(options) - set(TaskOptionsDict.__annotations__))
        if unknown:
            names = ", ".join(TaskOptionsDict.__annotations__)
            raise TypeError(f"unknown task option {unknown[0]!r}; the options are {names}")
        return cls(**options)

    def defaults(self, identifier: str) -> JobSpec | None:
        """The job defaults these options give (None when there are none)."""
        spec = JobSpec(
            queue_name=self.queue_name,
            max_attempts=self.max_attempts,
            priority=self.priority,
            job_key_mode=self.job_key_mode,
        )
        if spec == NO_DEFAULTS:
            return None
        try:
            # A default job_key_mode applies to jobs added with a key: check it as one.
            keyed = msgspec.structs.replace(spec, job_key="key" if spec.job_key_mode else None)
            keyed.validate()
        except InvalidJobSpec as ex:
            raise ConfigurationError(f"task {identifier!r}: {ex}") from None
        return spec


NO_DEFAULTS = JobSpec()
_NO_OPTIONS = TaskOptions()


def _caller_locals() -> Mapping[str, Any] | None:
    """Locals of the frame that applied the decorator (two frames up)."""
    frame = sys._getframe(2)
    return frame.f_locals if frame is not None else None


def _make(
    fn: Callable[P, R],
    identifier: str | None,
    options: TaskOptions,
    *,
    batch: bool,
    localns: Mapping[str, Any] | None = None,
) -> Task[P, R]:
    if isinstance(fn, Task):
        raise ConfigurationError(f"{fn.identifier!r} is already a gw task")
    payload_type, takes_context = _analyse(fn, batch=batch, localns=localns)
    name = identifier if identifier is not None else getattr(fn, "__name__", None)
    if not name:
        raise ConfigurationError(f"cannot infer a task identifier for {fn!r}; pass one")
    return Task(
        identifier=name,
        fn=fn,
        payload_type=payload_type,
        takes_context=takes_context,
        is_async=inspect.iscoroutinefunction(fn),
        is_batch=batch,
        timeout=options.timeout,
        defaults=options.defaults(name),
        retry=options.retry,
        loop=options.loop,
        rate_limit=options.rate_limit,
        max_concurrency=options.max_concurrency,
    )


TaskSource = Task[..., Any] | Callable[..., Any] | Mapping[str, Callable[..., Any]]


class TaskRegistry:
    """The set of tasks a worker runs, by identifier.

    Accepts gw tasks, plain functions (registered under their name) and
    mappings ``{identifier: function}``.
    """

    def __init__(self, tasks: Iterable[TaskSource] | Mapping[str, Callable[..., Any]] = ()) -> None:
        self._tasks: dict[str, Task[..., Any]] = {}
        if isinstance(tasks, Mapping):
            tasks = [tasks]
        for source in tasks:
            self.add(source)

    def add(self, source: TaskSource) -> None:
        if isinstance(source, Task):
            self._register(source)
        elif isinstance(source, Mapping):
            for identifier, fn in source.items():
                self._register(fn if isinstance(fn, Task) else task(identifier)(fn))
        elif callable(source):
            self._register(task(source))
        else:
            raise ConfigurationError(f"not a task: {source!r}")

    def define(
        self,
        identifier: str,
        fn: Callable[..., Awaitable[Any] | Any],
        options: TaskOptions = _NO_OPTIONS,
    ) -> Task[..., Any]:
        """Register ``fn`` under ``identifier`` (RS's ``define_job``)."""
        t = _make(fn, identifier, options, batch=False)
        self._register(t)
        return t

    def define_batch(
        self,
        identifier: str,
        fn: Callable[..., Awaitable[Any] | Any],
        options: TaskOptions = _NO_OPTIONS,
    ) -> Task[..., Any]:
        """Register a batch handler under ``identifier`` (RS's ``define_batch_job``)."""
        t = _make(fn, identifier, options, batch=True)
        self._register(t)
        return t

    def defaults(self) -> dict[str, JobSpec]:
        """The job defaults of the tasks that have some, by identifier."""
        return {t.identifier: t.defaults for t in self._tasks.values() if t.defaults is not None}

    def _register(self, t: Task[..., Any]) -> None:
        existing = self._tasks.get(t.identifier)
        if existing is not None and existing is not t:
            raise ConfigurationError(f"two handlers are registered for task {t.identifier!r}")
        self._tasks[t.identifier] = t

    def get(self, identifier: str) -> Task[..., Any]:
        try:
            return self._tasks[identifier]
        except KeyError:
            raise TaskNotFound(f"no handler is registered for task {identifier!r}") from None

    @property
    def identifiers(self) -> list[str]:
        return sorted(self._tasks)

    def __contains__(self, identifier: object) -> bool:
        return identifier in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> typing.Iterator[Task[..., Any]]:
        return iter(self._tasks.values())
