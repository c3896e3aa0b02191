"""LoggingPlugin: one structured log line per hook event."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..core import hooks as h
from ..errors import ConfigurationError
from ..types import Job, JobSpec

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ("LoggingPlugin",)

# Events that report trouble are louder than the rest by default.
_DEFAULT_LEVELS: dict[type[h.Event], int] = {
    h.JobFail: logging.WARNING,
    h.JobInterrupted: logging.WARNING,
    h.WorkerRecovered: logging.WARNING,
    h.JobPermanentlyFail: logging.ERROR,
}


class LoggingPlugin:
    """Log every event (``events`` narrows the set) on logger ``gw.events``.

    The message reads ``JobComplete worker_id=... job_id=12 task=send_email
    duration=0.0123``; the same fields are attached to the record as
    ``record.event`` (the event's name) and ``record.event_fields`` (a dict)
    for JSON formatters. Payloads are left out unless ``include_payload``.
    ``level`` applies to every event except those in ``levels`` (failures
    default to WARNING/ERROR). Interceptor events are logged too; the
    plugin's handler always answers Continue.
    """

    def __init__(
        self,
        *,
        level: int = logging.INFO,
        levels: Mapping[type[h.Event], int] | None = None,
        events: Iterable[type[h.Event]] = h.EVENTS,
        logger: logging.Logger | str = "gw.events",
        include_payload: bool = False,
    ) -> None:
        if not isinstance(level, int) or isinstance(level, bool):
            raise ConfigurationError(f"level must be a logging level (int), got {level!r}")
        self.level = level
        self.levels = {**_DEFAULT_LEVELS, **(levels or {})}
        self.events = tuple(events)
        for event in self.events:
            if not (isinstance(event, type) and issubclass(event, h.Event)):
                raise ConfigurationError(f"{event!r} is not a gw hook event class")
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.include_payload = include_payload

    def register(self, hooks: h.HookRegistry) -> None:
        for event in self.events:
            hooks.on(event, self._log)

    def _log(self, event: h.Event) -> None:
        level = self.levels.get(type(event), self.level)
        if not self.logger.isEnabledFor(level):
            return
        name = type(event).__name__
        fields = event_fields(event, include_payload=self.include_payload)
        text = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        self.logger.log(level, "%s %s", name, text, extra={"event": name, "event_fields": fields})


def event_fields(event: h.Event, *, include_payload: bool = False) -> dict[str, Any]:
    """An event as flat, JSON-friendly fields (jobs become job_id, task, ...)."""
    fields: dict[str, Any] = {}
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if name == "payload" and not include_payload:
            continue
        if isinstance(value, Job):
            fields["job_id"] = value.id
            fields["task"] = value.task_identifier
            fields["attempt"] = value.attempts
            fields["max_attempts"] = value.max_attempts
            if value.queue_name is not None:
                fields["queue"] = value.queue_name
        elif isinstance(value, JobSpec):
            fields.update(
                (f"spec_{k}", v)
                for k, v in (
                    ("queue_name", value.queue_name),
                    ("priority", value.priority),
                    ("job_key", value.job_key),
                )
                if v is not None
            )
        elif isinstance(value, BaseException):
            fields[name] = f"{type(value).__name__}: {value}"
        elif isinstance(value, datetime):
            fields[name] = value.isoformat()
        elif isinstance(value, float):
            fields[name] = round(value, 6)
        elif isinstance(value, tuple):
            fields[name] = list(value)
        else:
            fields[name] = value
    return fields


def _text(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if (not value or any(c.isspace() for c in value)) else value
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
