"""The Telegram bot: python-telegram-bot's real Application, long polling a loopback fake
of the Bot API; replies and database effects asserted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident, ModeChange
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.telegram.bot import BotCommands, build_application, parse_command
from apps.trading.models import Position
from tests.fakes.telegram import TOKEN, bot_api_server
from tests.integration.conftest import database_url, redis_url
from tests.trading.factories import accepted_order, instrument, paper_account

CHAT = -100123
USER = 4242
OTHER_CHAT = -100999
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = timezone.now()

    def __call__(self):
        return self.now


class RunningBot:
    """The Application polling in a thread with its own event loop (as run_polling does)."""

    def __init__(self, application) -> None:
        self.app = application
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=20)

    def start(self) -> None:
        self.thread.start()
        self._run(self._start())

    async def _start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        await self.app.updater.start_polling(poll_interval=0, timeout=1)

    def stop(self) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _stop(self) -> None:
        await self.app.updater.stop()
        await self.app.stop()
        await self.app.shutdown()
        await self.app.bot_data["close_db"]()  # run_polling calls it (post_shutdown)


@pytest.fixture
def bot(transactional_db, settings):
    settings.TELEGRAM_BOT_TOKEN = ""  # nothing leaves for the real Telegram from notifications
    clock = Clock()
    commands = BotCommands(chat_id=str(CHAT), confirm_seconds=60, clock=clock)
    with bot_api_server() as (url, api):
        running = RunningBot(
            build_application(token=TOKEN, api_url=url, commands=commands, poll_timeout=1)
        )
        running.start()
        api.clock = clock
        api.commands = commands
        try:
            yield api
        finally:
            running.stop()


def say(api, text, *, chat=CHAT, user=USER):
    """Send a message to the bot and wait until it was handled."""
    update_id = api.queue_message(chat_id=chat, user_id=user, text=text)
    api.wait_consumed(update_id)


def ask(api, text, **kwargs) -> str:
    before = len(api.sent)
    say(api, text, **kwargs)
    replies = api.wait_sent(before + 1)
    assert str(replies[-1]["chat_id"]) == str(kwargs.get("chat", CHAT))
    return replies[-1]["text"]


# --- parsing (pure) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/pause", ("pause", "")),
        ("/Pause@tb_bot broker down ", ("pause", "broker down")),
        ("/kill CONFIRM", ("kill", "CONFIRM")),
        ("/pause@other_bot", None),
        ("hello", None),
        ("/", None),
        ("", None),
    ],
)
def test_parse_command_when_text_given_then_command_and_arguments(text, expected):
    assert parse_command(text, "tb_bot") == expected


# --- reads -----------------------------------------------------------------------------------


def test_status_when_asked_then_mode_equity_positions_broker_and_feed(bot):
    account = paper_account()
    Position.objects.create(
        account=account,
        instrument=instrument("BTC-USD"),
        quantity=Decimal("0.5"),
        avg_price=Decimal("60000"),
    )

    reply = ask(bot, "/status")

    assert reply.startswith("Mode: NORMAL")
    assert "Account: paper" in reply
    assert "Open positions: 1" in reply
    assert "Broker: ok - paper (paper): connected" in reply
    assert "Data feed: fail - no feed has reported a bar yet" in reply
    event = AuditEvent.objects.get(action="telegram.command", target="status")
    assert event.actor == f"telegram:{USER}"


def test_positions_and_orders_when_asked_then_listed(bot):
    account = paper_account()
    inst = instrument("ETH-USD")
    Position.objects.create(
        account=account, instrument=inst, quantity=Decimal("2"), avg_price=Decimal("3000")
    )
    order = accepted_order(account, inst, quantity="1.5")

    positions = ask(bot, "/positions")
    orders = ask(bot, "/orders")

    assert "ETH-USD 2 @ 3,000.00" in positions
    assert order.client_order_id in orders
    assert "buy 1.5 ETH-USD" in orders


def test_pnl_when_no_equity_yet_then_says_so(bot):
    paper_account()

    assert ask(bot, "/pnl") == "No equity recorded yet for account paper."


# --- actions ---------------------------------------------------------------------------------


def test_pause_when_from_the_chat_then_paused_with_telegram_actor_and_audited(bot):
    reply = ask(bot, "/pause broker flapping")

    assert reply == "Mode is now PAUSE."
    assert system_mode_get() is SystemMode.PAUSE
    change = ModeChange.objects.get(to_mode="pause")
    assert (change.actor, change.source, change.reason) == (
        f"telegram:{USER}",
        "telegram",
        "broker flapping",
    )


def test_resume_when_paused_then_normal(bot):
    system_mode_set(mode="pause", actor="test", source="cli", reason="x")

    assert ask(bot, "/resume") == "Mode is now NORMAL."
    assert system_mode_get() is SystemMode.NORMAL


def test_resume_when_already_normal_then_refusal_explained(bot):
    assert ask(bot, "/resume").startswith("Refused:")


def test_kill_when_confirmed_within_the_window_then_kill_switch_engaged(bot):
    first = ask(bot, "/kill")
    assert "Send /kill CONFIRM within 60 s" in first
    assert system_mode_get() is SystemMode.NORMAL  # armed only

    second = ask(bot, "/kill CONFIRM")

    assert second.startswith("KILL engaged (incident #")
    assert system_mode_get() is SystemMode.KILL
    incident = Incident.objects.get()
    assert incident.opened_by == f"telegram:{USER}"
    assert ModeChange.objects.get(to_mode="kill").source == "telegram"


def test_kill_when_confirmation_too_late_then_nothing(bot):
    ask(bot, "/kill")
    bot.clock.now += timedelta(seconds=61)

    reply = ask(bot, "/kill CONFIRM")

    assert reply.startswith("No /kill to confirm")
    assert system_mode_get() is SystemMode.NORMAL


def test_kill_when_confirm_without_kill_then_nothing(bot):
    assert ask(bot, "/kill CONFIRM").startswith("No /kill to confirm")
    assert system_mode_get() is SystemMode.NORMAL


def test_kill_when_confirmed_by_another_user_then_nothing(bot):
    ask(bot, "/kill", user=USER)

    assert ask(bot, "/kill CONFIRM", user=USER + 1).startswith("No /kill to confirm")
    assert system_mode_get() is SystemMode.NORMAL


# --- who is obeyed ---------------------------------------------------------------------------


def test_foreign_chat_when_pause_and_kill_then_nothing_changes_and_audited(bot):
    for text in ("/pause", "/kill", "/kill CONFIRM"):
        say(bot, text, chat=OTHER_CHAT, user=666)
    ask(bot, "/help")  # the bot is alive and answering its own chat

    assert system_mode_get() is SystemMode.NORMAL
    assert not ModeChange.objects.exists()
    ignored = AuditEvent.objects.filter(action="telegram.ignored").order_by("id")
    assert [e.data["text"] for e in ignored] == ["/pause", "/kill", "/kill CONFIRM"]
    assert {(e.actor, e.target) for e in ignored} == {("telegram:666", str(OTHER_CHAT))}
    assert [str(m["chat_id"]) for m in bot.sent] == [str(CHAT)]  # no reply to the stranger


def test_allowed_users_when_set_then_others_in_the_chat_ignored(bot):
    bot.commands.allowed_user_ids = frozenset({USER})

    say(bot, "/pause", user=USER + 1)
    ask(bot, "/help", user=USER)

    assert system_mode_get() is SystemMode.NORMAL
    assert AuditEvent.objects.get(action="telegram.ignored").actor == f"telegram:{USER + 1}"


@pytest.mark.parametrize(
    ("text", "first_line"),
    [("/frobnicate", "Unknown command /frobnicate."), ("hi", "Not a command.")],
)
def test_unknown_or_malformed_when_sent_then_help_text(bot, text, first_line):
    reply = ask(bot, text)

    assert reply.startswith(first_line)
    assert "/kill - arm the kill switch" in reply


def test_non_text_message_when_sent_then_help_text(bot):
    update_id = bot.queue_message(chat_id=CHAT, user_id=USER, text=None)  # a sticker
    bot.wait_consumed(update_id)

    assert bot.wait_sent(1)[0]["text"].startswith("Not a command.")


# --- the command -----------------------------------------------------------------------------


def test_telegram_bot_command_when_no_token_then_clear_error(settings):
    settings.TELEGRAM_BOT_TOKEN = ""

    with pytest.raises(CommandError, match="TELEGRAM_BOT_TOKEN is not set"):
        call_command("telegram_bot")


def test_telegram_bot_command_when_running_then_answers_and_stops_on_sigint(
    transactional_db, settings
):
    with bot_api_server() as (url, api):
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url(settings.DATABASES["default"]),
            "REDIS_URL": redis_url(),
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_ID": str(CHAT),
            "TELEGRAM_API_URL": url,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        proc = subprocess.Popen(  # noqa: S603 - our interpreter and arguments
            [sys.executable, "manage.py", "telegram_bot", "--poll-timeout", "1"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            api.queue_message(chat_id=CHAT, user_id=USER, text="/help")
            (reply,) = api.wait_sent(1, timeout=30)
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=20)

    assert reply["text"].startswith("Tradebot commands:")
    assert "deleteWebhook" in api.calls
    assert "telegram bot: polling" in out
    assert proc.returncode == 0, out
    assert AuditEvent.objects.get(action="telegram.command").actor == f"telegram:{USER}"
