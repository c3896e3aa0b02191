"""gw.Retry decisions, without a database or an event loop."""

from __future__ import annotations

import logging
import math
import re
from datetime import timedelta

import pytest

import gw
from gw.core.retry import MAX_DELAY, Verdict


def test_default_is_graphile_backoff_computed_by_the_database() -> None:
    retry = gw.Retry()
    assert retry.decide(1, 25, ValueError("x")) == Verdict("retry", None)
    assert retry.decide(24, 25, ValueError("x")) == Verdict("retry", None)
    assert retry.decide(25, 25, ValueError("x")) == Verdict("final")


def test_fixed_delay_in_seconds_or_timedelta() -> None:
    assert gw.Retry(backoff=30).decide(3, 25, None) == Verdict("retry", 30.0)
    assert gw.Retry(backoff=timedelta(minutes=2)).decide(1, 25, None) == Verdict("retry", 120.0)
    assert gw.Retry(backoff=timedelta(minutes=2)).backoff == 120.0


def test_exponential_doubles_up_to_the_cap() -> None:
    retry = gw.Retry(backoff=gw.Exponential(initial=5, base=2, cap=60))
    delays = [retry.decide(attempt, 25, None).delay for attempt in range(1, 7)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    # Huge exponents stay at the cap instead of overflowing.
    assert retry.decide(5000, 10_000, None) == Verdict("retry", 60.0)


def test_exponential_jitter_takes_up_to_its_fraction_off() -> None:
    backoff = gw.Exponential(initial=100, base=1, cap=100, jitter=0.25)
    assert backoff.delay(1, rand=lambda: 0.0) == 100.0
    assert backoff.delay(1, rand=lambda: 0.5) == 87.5
    assert backoff.delay(1, rand=lambda: 0.999) == pytest.approx(75.025)
    seen = {backoff.delay(1) for _ in range(200)}
    assert all(75.0 <= d <= 100.0 for d in seen)
    assert len(seen) > 1


def test_callable_backoff_sees_attempt_and_error_and_none_stops() -> None:
    calls: list[tuple[int, BaseException]] = []

    def backoff(attempt: int, error: BaseException) -> float | None:
        calls.append((attempt, error))
        return None if isinstance(error, KeyError) else attempt * 10.0

    retry = gw.Retry(backoff=backoff)
    boom = RuntimeError("boom")
    assert retry.decide(2, 25, boom) == Verdict("retry", 20.0)
    assert retry.decide(2, 25, KeyError("k")) == Verdict("final")
    assert calls[0] == (2, boom)
    # Out of attempts: final without asking.
    calls.clear()
    assert retry.decide(25, 25, boom) == Verdict("final")
    assert calls == []


def test_callable_may_return_a_timedelta_and_is_capped() -> None:
    assert gw.Retry(backoff=lambda a, e: timedelta(hours=1)).decide(1, 5, None).delay == 3600.0
    assert gw.Retry(backoff=lambda a, e: 1e300).decide(1, 5, None).delay == MAX_DELAY


def test_a_broken_callable_falls_back_to_graphile_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def raises(attempt: int, error: BaseException) -> float:
        raise ZeroDivisionError("oops")

    def nonsense(attempt: int, error: BaseException) -> float:
        return "soon"  # type: ignore[return-value]

    with caplog.at_level(logging.ERROR, logger="gw.worker"):
        assert gw.Retry(backoff=raises).decide(1, 5, None) == Verdict("retry", None)
        assert gw.Retry(backoff=nonsense).decide(1, 5, None) == Verdict("retry", None)
        assert gw.Retry(backoff=lambda a, e: -1).decide(1, 5, None) == Verdict("retry", None)
        assert gw.Retry(backoff=lambda a, e: math.nan).decide(1, 5, None) == Verdict("retry", None)
    messages = [r.getMessage() for r in caplog.records]
    assert "raised; using Graphile's backoff" in messages[0]
    assert "backoff must be seconds or a timedelta, got 'soon'" in messages[1]
    assert "backoff must be 0 or more seconds, got -1" in messages[2]
    assert "backoff must be 0 or more seconds, got nan" in messages[3]


class Transient(Exception):
    pass


class Invalid(Exception):
    pass


def test_give_up_on_and_retry_on() -> None:
    retry = gw.Retry(give_up_on=Invalid)
    assert retry.decide(1, 25, Invalid()) == Verdict("final")
    assert retry.decide(1, 25, Transient()) == Verdict("retry", None)

    only = gw.Retry(retry_on=(Transient, TimeoutError), backoff=7)
    assert only.decide(1, 25, Transient()) == Verdict("retry", 7.0)
    assert only.decide(1, 25, TimeoutError()) == Verdict("retry", 7.0)
    assert only.decide(1, 25, ValueError()) == Verdict("final")
    # give_up_on wins over retry_on.
    both = gw.Retry(retry_on=Exception, give_up_on=Invalid)
    assert both.decide(1, 25, Invalid()) == Verdict("final")
    assert both.decide(1, 25, Transient()) == Verdict("retry", None)


def test_permanent_failure_payload_errors_and_retry_after() -> None:
    retry = gw.Retry(retry_on=Exception)
    assert retry.decide(1, 25, gw.PermanentFailure("no such user")) == Verdict("final")
    # A payload that does not fit is final, unless retry_on names it.
    assert gw.Retry().decide(1, 25, gw.PayloadError("bad")) == Verdict("final")
    assert retry.decide(1, 25, gw.PayloadError("bad")) == Verdict("retry", None)
    # RetryAfter snoozes whatever the policy, even on the last attempt.
    snooze = gw.Retry(give_up_on=Exception).decide(25, 25, gw.RetryAfter(30, "rate limited"))
    assert snooze == Verdict("snooze", 30.0)
    assert gw.Retry().decide(1, 5, gw.RetryAfter(timedelta(days=36500))).delay == MAX_DELAY


def test_failures_without_an_exception_follow_the_backoff() -> None:
    # A hook's Fail or a batch with failed items has no exception.
    assert gw.Retry(backoff=3, retry_on=KeyError).decide(1, 25, None) == Verdict("retry", 3.0)


def test_exception_texts() -> None:
    assert str(gw.PermanentFailure("gone")) == "gone"
    assert gw.PermanentFailure("gone").reason == "gone"
    after = gw.RetryAfter(12.5, "busy")
    assert (str(after), after.delay, after.reason) == ("busy", 12.5, "busy")
    assert str(gw.RetryAfter(timedelta(seconds=90))) == "retry after 90 s"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backoff": "fast"}, "Retry backoff must be None (Graphile's), seconds, a timedelta"),
        ({"backoff": True}, "Retry backoff must be None"),
        ({"backoff": -5}, "Retry backoff must be 0 or more seconds, got -5"),
        ({"backoff": math.inf}, "Retry backoff must be 0 or more seconds, got inf"),
        ({"retry_on": "ValueError"}, "Retry retry_on must be an exception class or a tuple"),
        ({"give_up_on": (ValueError, 3)}, "Retry give_up_on must be an exception class"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(gw.ConfigurationError, match=f"^{re.escape(message)}"):
        gw.Retry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1}, "Exponential initial must be 0 or more, got -1"),
        ({"base": 0.5}, "Exponential base must be 1 or more, got 0.5"),
        ({"cap": "1h"}, "Exponential cap must be a number, got '1h'"),
        ({"jitter": 1.5}, "Exponential jitter is a fraction from 0 to 1, got 1.5"),
        ({"initial": math.nan}, "Exponential initial must be 0 or more, got nan"),
    ],
)
def test_bad_exponentials_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(gw.ConfigurationError, match=f"^{message}$"):
        gw.Exponential(**kwargs)  # type: ignore[arg-type]


def test_retry_after_refuses_a_bad_delay() -> None:
    with pytest.raises(gw.ConfigurationError, match="RetryAfter delay must be 0 or more seconds"):
        gw.RetryAfter(-1)
