"""Table 5.1 routing, rate limits and backoff (pure)."""

from __future__ import annotations

import pytest

from apps.notifications.domain.routing import (
    Channel,
    RateLimit,
    RoutingError,
    Severity,
    backoff_seconds,
    channels_for,
    severity_of,
    truncate,
)


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.INFO, ()),
        (Severity.WARNING, (Channel.TELEGRAM,)),
        (Severity.ERROR, (Channel.TELEGRAM, Channel.EMAIL)),
        (Severity.CRITICAL, (Channel.TELEGRAM, Channel.EMAIL, Channel.SMS)),
    ],
)
def test_channels_for_when_severity_given_then_table_5_1(severity, expected):
    assert channels_for(severity) == expected


def test_severity_of_when_any_case_then_parsed():
    assert severity_of(" CRITICAL ") is Severity.CRITICAL


def test_severity_of_when_unknown_then_error_names_the_allowed_values():
    with pytest.raises(RoutingError, match="unknown severity 'fatal': use one of info, warning"):
        severity_of("fatal")


def test_rate_limit_when_parsed_then_count_and_window():
    limit = RateLimit.parse("20/60")
    assert (limit.count, limit.seconds) == (20, 60)
    assert limit.window(119.9) == 1
    assert limit.window(120.0) == 2


@pytest.mark.parametrize("text", ["20", "20/0", "x/60", "20/s", "", "-1/60"])
def test_rate_limit_when_malformed_then_error_shows_the_format(text):
    with pytest.raises(RoutingError, match="must be <messages>/<seconds>"):
        RateLimit.parse(text)


def test_backoff_when_retries_grow_then_doubles_up_to_the_cap():
    assert [backoff_seconds(r, base=10, cap=60) for r in range(5)] == [10, 20, 40, 60, 60]


def test_truncate_when_too_long_then_cut_with_an_ellipsis():
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 4) == "abc"
