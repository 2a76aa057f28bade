"""The FHIR sender's retry policy: Retry-After parsing, backoff bounds, which statuses are retried."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pyheart.adapters.fhir.retry import RetryPolicy, parse_retry_after, retriable_status


def test_retry_after_in_seconds() -> None:
    """A delta-seconds Retry-After is read as seconds."""
    assert parse_retry_after("7") == 7.0


def test_retry_after_as_http_date() -> None:
    """An HTTP-date Retry-After is the time left until that date."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0


def test_retry_after_in_the_past_is_zero() -> None:
    """An HTTP-date already passed means retry now."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3", "1.5"])
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    """A missing or malformed Retry-After gives None (the backoff applies)."""
    assert parse_retry_after(value) is None


def test_delay_honours_retry_after() -> None:
    """When the server says when, the policy waits exactly that long."""
    assert RetryPolicy().delay(1, retry_after=3.0) == 3.0


def test_delay_caps_retry_after() -> None:
    """A Retry-After longer than retry_after_max_s is capped."""
    assert RetryPolicy(retry_after_max_s=10).delay(1, retry_after=3600) == 10


def test_backoff_grows_and_stays_bounded() -> None:
    """Backoff doubles per attempt within [delay/2, delay] and never exceeds backoff_max_s."""
    policy = RetryPolicy(backoff_s=1.0, backoff_max_s=8.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = [policy.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


def test_retries_are_bounded() -> None:
    """With max_retries=2, attempts 1-2 may be retried and attempt 3 is the last."""
    policy = RetryPolicy(max_retries=2)
    assert [policy.exhausted(n) for n in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize("status", [401, 403, 408, 409, 429, 500, 502, 503, 504, 599])
def test_retriable_statuses(status: int) -> None:
    """Throttling, auth outages, conflicts and server errors are retried."""
    assert retriable_status(status)


@pytest.mark.parametrize("status", [400, 404, 405, 410, 412, 422])
def test_rejections_are_not_retried(status: int) -> None:
    """Other 4xx answers reject the message: retrying would not help."""
    assert not retriable_status(status)
