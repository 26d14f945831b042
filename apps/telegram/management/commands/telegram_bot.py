"""Run the Telegram bot (long polling) until interrupted."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.telegram.bot import BotCommands, build_application


class Command(BaseCommand):
    help = (
        "Run the Telegram bot: long polling of the Bot API (TELEGRAM_API_URL) with "
        "TELEGRAM_BOT_TOKEN. Commands /status /pnl /positions /orders /pause /resume /kill "
        "(then /kill CONFIRM within TELEGRAM_KILL_CONFIRM_SECONDS) /help. Only "
        "TELEGRAM_CHAT_ID (and TELEGRAM_ALLOWED_USER_IDS when set) is obeyed; other senders "
        "are ignored and audited. Every command is audited as telegram:<user id>. "
        "Ctrl-C or SIGTERM stops it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--poll-timeout",
            type=int,
            default=settings.TELEGRAM_POLL_TIMEOUT,
            help="long polling timeout of getUpdates, seconds (default TELEGRAM_POLL_TIMEOUT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from telegram import Update

        if not settings.TELEGRAM_BOT_TOKEN:
            raise CommandError("TELEGRAM_BOT_TOKEN is not set: put the bot's token in the env file")
        if not settings.TELEGRAM_CHAT_ID.lstrip("-").isdigit():
            raise CommandError(
                "TELEGRAM_CHAT_ID must be the numeric id of the operators' chat "
                f"(got {settings.TELEGRAM_CHAT_ID!r})"
            )
        if options["poll_timeout"] < 0:
            raise CommandError("--poll-timeout must be >= 0")
        application = build_application(
            token=settings.TELEGRAM_BOT_TOKEN,
            api_url=settings.TELEGRAM_API_URL,
            commands=BotCommands.from_settings(),
            poll_timeout=options["poll_timeout"],
        )
        users = ", ".join(str(u) for u in sorted(settings.TELEGRAM_ALLOWED_USER_IDS)) or "any"
        self.stdout.write(
            f"telegram bot: polling {settings.TELEGRAM_API_URL} for chat "
            f"{settings.TELEGRAM_CHAT_ID} (users: {users}); Ctrl-C stops"
        )
        application.run_polling(
            allowed_updates=Update.ALL_TYPES, timeout=options["poll_timeout"], poll_interval=0.0
        )
        self.stdout.write("telegram bot: stopped")
