"""How a channel failed, which decides what happens next.

- TemporaryFailure: the network, a timeout, 5xx, 429: retried with backoff.
- PermanentFailure: the provider refused this message (e.g. 400): not retried.
- CredentialsFailure: the provider refused us (Telegram 401/403, SMTP auth, SMS 401/403):
  the channel is disabled, reported once, and not tried again until its settings change
  or the cool-down passes.
- NotConfigured: the channel's settings are empty: the delivery is skipped.
"""

from __future__ import annotations


class DeliveryFailure(Exception):
    """Base: ``message`` is safe to store and show (no secrets)."""

    kind = "failure"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TemporaryFailure(DeliveryFailure):
    kind = "temporary"


class PermanentFailure(DeliveryFailure):
    kind = "permanent"


class CredentialsFailure(DeliveryFailure):
    kind = "credentials"


class NotConfigured(DeliveryFailure):
    kind = "not_configured"
