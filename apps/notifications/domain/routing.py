"""Which channels a severity goes to (operations spec, table 5.1), rate limits and backoff.

Pure: no Django. The services apply these rules to stored notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """The four severities of the spec, in the order of urgency."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Channel(StrEnum):
    """The ways a person is reached."""

    TELEGRAM = "telegram"
    EMAIL = "email"
    SMS = "sms"


# Table 5.1: INFO log only; WARNING Telegram; ERROR Telegram + e-mail;
# CRITICAL Telegram + e-mail + SMS.
ROUTES: dict[Severity, tuple[Channel, ...]] = {
    Severity.INFO: (),
    Severity.WARNING: (Channel.TELEGRAM,),
    Severity.ERROR: (Channel.TELEGRAM, Channel.EMAIL),
    Severity.CRITICAL: (Channel.TELEGRAM, Channel.EMAIL, Channel.SMS),
}


class RoutingError(ValueError):
    """A severity, channel or rate that does not exist; the message names the allowed ones."""


def severity_of(value: object) -> Severity:
    """Parse a severity (any case); raise RoutingError naming the allowed values."""
    try:
        return Severity(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise RoutingError(f"unknown severity {value!r}: use one of {allowed}") from None


def channels_for(severity: Severity) -> tuple[Channel, ...]:
    """The channels a notification of ``severity`` is delivered to (table 5.1)."""
    return ROUTES[severity]


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` messages per ``seconds`` on one channel (fixed windows)."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``"<messages>/<seconds>"``, e.g. ``"20/60"``."""
        count, sep, seconds = text.strip().partition("/")
        if not sep or not count.isdigit() or not seconds.isdigit() or int(seconds) < 1:
            raise RoutingError(f"rate {text!r} must be <messages>/<seconds>, e.g. 20/60")
        return cls(int(count), int(seconds))

    def window(self, now_epoch: float) -> int:
        """The index of the fixed window ``now_epoch`` falls in."""
        return int(now_epoch // self.seconds)


def backoff_seconds(retries: int, *, base: int, cap: int) -> int:
    """Exponential backoff before retry number ``retries + 1``: base, 2*base, 4*base... <= cap."""
    return int(min(cap, base * (2 ** max(0, retries))))


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"
