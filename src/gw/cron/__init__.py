"""Cron for gw: crontab parsing, schedule matching and the typed ``Cron`` builder.

Everything exported here is pure and synchronous. The runner that ticks every
minute and enqueues jobs is :class:`gw.cron.runner.CronRunner` (started by
``gw.Worker`` from its ``crontab=``/``cron=`` options, see
:mod:`gw.cron.sources`).
"""

from __future__ import annotations

from gw.cron._types import (
    CronItem as CronItem,
    CrontabFill as CrontabFill,
    CronTimer as CronTimer,
    JobKeyMode as JobKeyMode,
)
from gw.cron.builder import Cron as Cron, HasIdentifier as HasIdentifier
from gw.cron.matcher import (
    ceil_minute as ceil_minute,
    floor_minute as floor_minute,
    iter_matches as iter_matches,
    matches as matches,
    minutes_between as minutes_between,
    next_match as next_match,
)
from gw.cron.parser import (
    parse_cron_line as parse_cron_line,
    parse_crontab as parse_crontab,
    parse_timer as parse_timer,
)

__all__ = (
    "Cron",
    "CronItem",
    "CronTimer",
    "CrontabFill",
    "HasIdentifier",
    "JobKeyMode",
    "ceil_minute",
    "floor_minute",
    "iter_matches",
    "matches",
    "minutes_between",
    "next_match",
    "parse_cron_line",
    "parse_crontab",
    "parse_timer",
)
