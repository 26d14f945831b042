"""The three channels: Telegram (python-telegram-bot), e-mail (Django mail), SMS (HTTP).

Each ``send_*`` sends one message and returns the provider's id for it, or raises a
DeliveryFailure subclass (apps.notifications.domain.errors) that says what to do next.
Error messages never contain a secret (tokens are not echoed).
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from collections.abc import Callable

from django.conf import settings

from apps.notifications.domain.errors import (
    CredentialsFailure,
    NotConfigured,
    PermanentFailure,
    TemporaryFailure,
)
from apps.notifications.domain.routing import Channel, truncate

TELEGRAM_MAX_CHARS = 4096


# --- Telegram --------------------------------------------------------------------------------


def telegram_send(*, text: str, chat_id: str | None = None) -> str:
    """Send one plain-text message to TELEGRAM_CHAT_ID (or ``chat_id``); returns its id.

    TELEGRAM_API_URL sets the server (a loopback fake in tests). 401/404 (bad token) and
    403 (the bot was removed from the chat) are credential failures; 400 (e.g. chat not
    found) is permanent; timeouts, network errors, 5xx and 429 are temporary.
    """
    from telegram import Bot
    from telegram.error import (
        BadRequest,
        Forbidden,
        InvalidToken,
        NetworkError,
        RetryAfter,
        TelegramError,
    )
    from telegram.request import HTTPXRequest

    token = settings.TELEGRAM_BOT_TOKEN
    chat = chat_id or settings.TELEGRAM_CHAT_ID
    if not token or not chat:
        raise NotConfigured(
            "Telegram is not configured: set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID"
        )

    async def send() -> int:
        bot = Bot(
            token=token,
            base_url=f"{settings.TELEGRAM_API_URL}/bot",
            request=HTTPXRequest(connect_timeout=5, read_timeout=10),
        )
        # send_message only: `async with bot` would call getMe first (one more request).
        await bot.initialize()
        try:
            message = await bot.send_message(chat_id=chat, text=text[:TELEGRAM_MAX_CHARS])
        finally:
            await bot.shutdown()
        return message.message_id

    try:
        return str(asyncio.run(send()))
    except InvalidToken as exc:
        raise CredentialsFailure(f"Telegram refused the bot token: {exc.message}") from exc
    except Forbidden as exc:
        raise CredentialsFailure(f"Telegram forbids the bot in this chat: {exc.message}") from exc
    except RetryAfter as exc:
        retry = exc.retry_after
        seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
        raise TemporaryFailure(
            f"Telegram asks to wait {seconds:.0f} s (429)", retry_after=seconds
        ) from exc
    except BadRequest as exc:
        raise PermanentFailure(f"Telegram refused the message: {exc.message}") from exc
    except NetworkError as exc:  # includes TimedOut and 502
        raise TemporaryFailure(f"Telegram did not answer: {exc.message}") from exc
    except TelegramError as exc:
        raise TemporaryFailure(f"Telegram error: {exc.message}") from exc


# --- e-mail ----------------------------------------------------------------------------------


def email_send(*, subject: str, body: str) -> str:
    """Send one e-mail to NOTIFY_EMAIL_RECIPIENTS through Django's configured backend.

    SMTP authentication errors are credential failures; refused sender or recipients are
    permanent; connection errors, timeouts and 4xx replies are temporary.
    """
    from django.core.mail import EmailMessage, get_connection
    from django.core.mail.message import make_msgid

    recipients = list(settings.NOTIFY_EMAIL_RECIPIENTS)
    if not recipients:
        raise NotConfigured("e-mail is not configured: set ALERT_EMAIL or NOTIFY_EMAIL_RECIPIENTS")
    if settings.EMAIL_BACKEND.endswith("smtp.EmailBackend") and not settings.EMAIL_HOST:
        raise NotConfigured("e-mail is not configured: set SMTP_SMARTHOST (host:port)")
    message = EmailMessage(
        subject=subject[:200],
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        headers={"Message-ID": make_msgid(domain="tradebot")},
        connection=get_connection(fail_silently=False),
    )
    try:
        message.send()
    except smtplib.SMTPAuthenticationError as exc:
        raise CredentialsFailure(
            f"the SMTP server refused the login of {settings.EMAIL_HOST_USER!r}: "
            f"{exc.smtp_code} {_decode(exc.smtp_error)}"
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise CredentialsFailure(f"the SMTP server does not support login: {exc}") from exc
    except smtplib.SMTPSenderRefused as exc:
        raise PermanentFailure(
            f"the SMTP server refused the sender {exc.sender!r}: {exc.smtp_code}"
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise PermanentFailure(
            f"the SMTP server refused the recipients {', '.join(exc.recipients)}"
        ) from exc
    except smtplib.SMTPResponseException as exc:
        kind = TemporaryFailure if 400 <= exc.smtp_code < 500 else PermanentFailure
        raise kind(f"the SMTP server answered {exc.smtp_code} {_decode(exc.smtp_error)}") from exc
    except (smtplib.SMTPException, OSError) as exc:  # connect refused, timeout, disconnect
        raise TemporaryFailure(
            f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} did not answer: "
            f"{exc.__class__.__name__}: {exc}"
        ) from exc
    return message.extra_headers["Message-ID"][:128]


def _decode(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# --- SMS -------------------------------------------------------------------------------------


def sms_send(*, text: str, reference: str) -> str:
    """POST one SMS to the provider's HTTP API; returns the provider's id (or "sent").

    Wire format (generic JSON, bearer auth)::

        POST NOTIFY_SMS_URL
        Authorization: Bearer NOTIFY_SMS_TOKEN
        {"to": ["+34600000000"], "from": "Tradebot", "text": "...", "reference": "..."}

    Any 2xx is success (``id`` or ``message_id`` of a JSON answer is kept). 401/403:
    credential failure; 429, 5xx and network errors: temporary; any other answer: permanent.
    """
    import httpx

    url, token = settings.NOTIFY_SMS_URL, settings.NOTIFY_SMS_TOKEN
    recipients = list(settings.NOTIFY_SMS_RECIPIENTS)
    if not url or not token or not recipients:
        raise NotConfigured(
            "SMS is not configured: set NOTIFY_SMS_URL, NOTIFY_SMS_TOKEN and NOTIFY_SMS_RECIPIENTS"
        )
    body = {
        "to": recipients,
        "from": settings.NOTIFY_SMS_SENDER,
        "text": truncate(text, settings.NOTIFY_SMS_MAX_CHARS),
        "reference": reference,
    }
    try:
        response = httpx.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.NOTIFY_HTTP_TIMEOUT_SECONDS,
        )
    except (OSError, httpx.HTTPError) as exc:
        raise TemporaryFailure(
            f"the SMS provider did not answer: {exc.__class__.__name__}: {exc}"
        ) from exc
    code = response.status_code
    detail = response.text[:200]
    if 200 <= code < 300:
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if isinstance(answer, dict):
            return str(answer.get("id") or answer.get("message_id") or "sent")[:128]
        return "sent"
    if code in (401, 403):
        raise CredentialsFailure(f"the SMS provider refused the token ({code}): {detail}")
    if code == 429 or code >= 500:
        retry = response.headers.get("Retry-After", "")
        raise TemporaryFailure(
            f"the SMS provider answered {code}: {detail}",
            retry_after=float(retry) if retry.isdigit() else None,
        )
    raise PermanentFailure(f"the SMS provider refused the message ({code}): {detail}")


# --- which settings make a channel -----------------------------------------------------------

_CONFIG: dict[Channel, Callable[[], tuple[object, ...]]] = {
    Channel.TELEGRAM: lambda: (
        settings.TELEGRAM_BOT_TOKEN,
        settings.TELEGRAM_CHAT_ID,
        settings.TELEGRAM_API_URL,
    ),
    Channel.EMAIL: lambda: (
        settings.EMAIL_BACKEND,
        settings.EMAIL_HOST,
        settings.EMAIL_PORT,
        settings.EMAIL_HOST_USER,
        settings.EMAIL_HOST_PASSWORD,
        tuple(settings.NOTIFY_EMAIL_RECIPIENTS),
    ),
    Channel.SMS: lambda: (
        settings.NOTIFY_SMS_URL,
        settings.NOTIFY_SMS_TOKEN,
        tuple(settings.NOTIFY_SMS_RECIPIENTS),
    ),
}


def config_fingerprint(channel: Channel) -> str:
    """A hash of the channel's settings (never the settings themselves)."""
    return hashlib.sha256(repr(_CONFIG[channel]()).encode()).hexdigest()


def configured(channel: Channel) -> str:
    """ "" when the channel has its settings, else what to set."""
    if channel is Channel.TELEGRAM:
        if not settings.TELEGRAM_BOT_TOKEN or not settings.TELEGRAM_CHAT_ID:
            return "Telegram is not configured: set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID"
    elif channel is Channel.EMAIL:
        if not settings.NOTIFY_EMAIL_RECIPIENTS:
            return "e-mail is not configured: set ALERT_EMAIL or NOTIFY_EMAIL_RECIPIENTS"
        if settings.EMAIL_BACKEND.endswith("smtp.EmailBackend") and not settings.EMAIL_HOST:
            return "e-mail is not configured: set SMTP_SMARTHOST (host:port)"
    elif channel is Channel.SMS and not (
        settings.NOTIFY_SMS_URL and settings.NOTIFY_SMS_TOKEN and settings.NOTIFY_SMS_RECIPIENTS
    ):
        return (
            "SMS is not configured: set NOTIFY_SMS_URL, NOTIFY_SMS_TOKEN and NOTIFY_SMS_RECIPIENTS"
        )
    return ""
