"""Telegram notifications through python-telegram-bot (the checklists' channel)."""

from __future__ import annotations

import asyncio

from django.conf import settings

from apps.ops.exceptions import OpsError


class NotifyError(OpsError):
    code = "notify_failed"


def telegram_send(*, text: str, chat_id: str | None = None) -> int:
    """Send one plain-text message; returns its message id. TELEGRAM_API_URL sets the server."""
    from telegram import Bot
    from telegram.error import TelegramError
    from telegram.request import HTTPXRequest

    token = settings.TELEGRAM_BOT_TOKEN
    chat = chat_id or settings.TELEGRAM_CHAT_ID
    if not token or not chat:
        raise NotifyError("Telegram is not configured: set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID")

    async def send() -> int:
        bot = Bot(
            token=token,
            base_url=f"{settings.TELEGRAM_API_URL}/bot",
            request=HTTPXRequest(connect_timeout=5, read_timeout=10),
        )
        async with bot:
            message = await bot.send_message(chat_id=chat, text=text[:4096])
        return message.message_id

    try:
        return asyncio.run(send())
    except TelegramError as exc:
        raise NotifyError(f"Telegram refused or did not answer: {exc}") from exc
