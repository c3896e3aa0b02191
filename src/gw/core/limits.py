"""Fleet-wide limits: rate limits and concurrency limits shared by every gw worker.

The state lives in gw's own migration track (``_private_gw_limits``,
``_private_gw_slots``); the arithmetic here is pure, so it is unit-tested
without a database or an event loop.

A rate limit is a token bucket of ``burst`` tokens refilled at ``count / per``
tokens a second; a job takes a token when a worker locks it. So in any
interval of length ``T`` at most ``burst + count * T / per`` jobs of the key
start, across the whole fleet. A concurrency limit counts the jobs of the key
that gw workers hold locked: a slot comes back when the job completes, fails,
or is recovered from a dead worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from ..errors import ConfigurationError

__all__ = ("KeyLimit", "RateLimit", "grant", "token_wait")

# Tokens are floats: a refill of exactly one token may come out as 0.9999999.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` jobs per ``per`` (seconds or a timedelta), fleet-wide.

    ``burst`` is how many may start back to back after a quiet spell (the
    bucket's size, default 1: starts are spread evenly). In any interval of
    length ``T`` at most ``burst + count * T / per`` jobs start.
    """

    count: float
    per: float | timedelta = 1.0
    burst: float = 1

    def __post_init__(self) -> None:
        per = self.per.total_seconds() if isinstance(self.per, timedelta) else self.per
        if isinstance(self.count, bool) or not isinstance(self.count, (int, float)):
            raise ConfigurationError(f"RateLimit count must be a number, got {self.count!r}")
        if not self.count > 0 or math.isinf(self.count):
            raise ConfigurationError(f"RateLimit count must be > 0, got {self.count!r}")
        if isinstance(per, bool) or not isinstance(per, (int, float)) or not per > 0:
            raise ConfigurationError(
                f"RateLimit per must be a positive number of seconds or a timedelta, "
                f"got {self.per!r}"
            )
        if isinstance(self.burst, bool) or not isinstance(self.burst, (int, float)):
            raise ConfigurationError(f"RateLimit burst must be a number, got {self.burst!r}")
        if not 1 <= self.burst < math.inf:
            raise ConfigurationError(
                f"RateLimit burst must be at least 1 (one job at a time), got {self.burst!r}"
            )
        object.__setattr__(self, "per", float(per))

    @property
    def per_second(self) -> float:
        """Tokens added per second."""
        assert isinstance(self.per, float)
        return self.count / self.per

    def __str__(self) -> str:
        assert isinstance(self.per, float)
        text = f"{self.count:g}/{self.per:g}s"
        return text if self.burst == 1 else f"{text} (burst {self.burst:g})"


def check_max_concurrency(value: object, what: str) -> int | None:
    """``value`` as a concurrency limit (None: no limit), or a ConfigurationError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} max_concurrency must be an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class KeyLimit:
    """The limits of one key: a task's jobs (``task:<identifier>``) or a named
    queue's (``queue:<name>``)."""

    kind: Literal["task", "queue"]
    name: str
    rate: RateLimit | None = None
    max_concurrency: int | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    def row(self) -> dict[str, object]:
        """The ``_private_gw_limits`` row this limit configures."""
        return {
            "key": self.key,
            "rate": None if self.rate is None else self.rate.per_second,
            "burst": None if self.rate is None else float(self.rate.burst),
            "max_concurrency": self.max_concurrency,
        }

    def __str__(self) -> str:
        parts = []
        if self.rate is not None:
            parts.append(f"rate {self.rate}")
        if self.max_concurrency is not None:
            parts.append(f"max_concurrency {self.max_concurrency}")
        return f"{self.key} ({', '.join(parts)})"


def available_tokens(limit: KeyLimit, refilled: float) -> float:
    """Tokens in the bucket: what the database refilled, capped at the burst."""
    if limit.rate is None:
        return math.inf
    return min(float(limit.rate.burst), refilled)


def grant(limit: KeyLimit, refilled: float, running: int, want: int) -> int:
    """How many jobs of ``limit``'s key a worker with ``want`` free slots may lock now.

    ``refilled``: the bucket's tokens refilled up to now (uncapped);
    ``running``: the key's jobs gw workers hold.
    """
    n = want
    if limit.rate is not None:
        n = min(n, math.floor(available_tokens(limit, refilled) + _EPSILON))
    if limit.max_concurrency is not None:
        n = min(n, limit.max_concurrency - running)
    return max(n, 0)


def token_wait(limit: KeyLimit, tokens: float) -> float:
    """Seconds until the bucket holds a whole token again (0 when it does)."""
    if limit.rate is None or tokens + _EPSILON >= 1:
        return 0.0
    return (1 - tokens) / limit.rate.per_second
