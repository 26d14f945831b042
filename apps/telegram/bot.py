"""The Telegram bot (``manage.py telegram_bot``): commands from the operators' chat.

Two layers:

- ``BotCommands.handle(...)`` is plain synchronous Django code: who may speak, what each
  command does, the audit rows. It reads through the selectors (apps.risk.selectors,
  apps.trading.selectors) and acts through the same services as the panel and the CLI
  (``system_mode_set``, ``kill_switch_engage``), with actor ``telegram:<user id>`` and
  source "telegram".
- ``build_application(...)`` wraps it in python-telegram-bot's Application (long polling;
  ``base_url`` points it at another Bot API server, a loopback fake in tests). The ORM
  work runs in a worker thread (``sync_to_async``), never in the event loop.

Only TELEGRAM_CHAT_ID is obeyed and, when TELEGRAM_ALLOWED_USER_IDS is set, only those
users in it; any other sender gets no answer and leaves a "telegram.ignored" audit row.
``/kill`` only arms: ``/kill CONFIRM`` from the same chat and user within
TELEGRAM_KILL_CONFIRM_SECONDS engages the kill switch. The pending confirmation lives in
the bot process's memory, so a restart forgets it (safe: the operator asks again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from apps.audit.services import audit_record
from apps.model.orders import OrderStatus
from apps.ops.health import check_broker, check_data_feed
from apps.risk.exceptions import ModeChangeRefused
from apps.risk.models import ModeSource
from apps.risk.services.modes import system_mode_set, system_state_get
from apps.trading.selectors import overview_snapshot, risk_overview
from apps.trading.services.kill_switch import kill_switch_engage

logger = logging.getLogger(__name__)

HELP = """Tradebot commands:
/status - mode, equity, P&L, positions, broker and data feed
/pnl - P&L of the account and of the day
/positions - open positions
/orders - working orders
/pause [reason] - PAUSE: no new orders
/resume [reason] - back to NORMAL (not from KILL)
/kill - arm the kill switch; then /kill CONFIRM within {seconds} s
/help - this text"""

COMMANDS = ("status", "pnl", "positions", "orders", "pause", "resume", "kill", "help", "start")
MAX_REPLY = 4000


def parse_command(text: str, bot_username: str = "") -> tuple[str, str] | None:
    """``"/pause@tb_bot broker down"`` -> ``("pause", "broker down")``; None if not a command.

    A command addressed to another bot (``/pause@other_bot``) is not ours: None.
    """
    text = (text or "").strip()
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _, rest = text.partition(" ")
    name, _, target = head[1:].partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return None
    return name.lower(), rest.strip()


def _money(value: Any) -> str:
    if value in (None, ""):
        return "-"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{number:,.2f}"


def _pct(value: Any) -> str:
    if value in (None, ""):
        return "-"
    try:
        return f"{Decimal(str(value)) * 100:+.2f} %"
    except InvalidOperation:
        return str(value)


def _qty(value: Any) -> str:
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        return str(value)


class BotCommands:
    """What the bot does with one message; one instance per bot process."""

    def __init__(
        self,
        *,
        chat_id: str,
        allowed_user_ids: frozenset[int] = frozenset(),
        confirm_seconds: int = 60,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.chat_id = str(chat_id).strip()
        self.allowed_user_ids = allowed_user_ids
        self.confirm_window = timedelta(seconds=confirm_seconds)
        self.clock = clock
        self.bot_username = ""
        # (chat id, user id) -> when /kill was asked; cleared on use or expiry.
        self._kill_armed: dict[tuple[int, int | None], datetime] = {}

    @classmethod
    def from_settings(cls) -> BotCommands:
        return cls(
            chat_id=settings.TELEGRAM_CHAT_ID,
            allowed_user_ids=settings.TELEGRAM_ALLOWED_USER_IDS,
            confirm_seconds=settings.TELEGRAM_KILL_CONFIRM_SECONDS,
        )

    def help_text(self) -> str:
        return HELP.format(seconds=int(self.confirm_window.total_seconds()))

    def authorized(self, chat_id: int, user_id: int | None) -> bool:
        if str(chat_id) != self.chat_id:
            return False
        return not self.allowed_user_ids or user_id in self.allowed_user_ids

    def handle(
        self, *, chat_id: int, user_id: int | None, username: str = "", text: str | None
    ) -> str | None:
        """The reply to one message, or None (ignored: not from the operators' chat)."""
        actor = f"telegram:{user_id if user_id is not None else 'unknown'}"
        shown = (text or "")[:200]
        if not self.authorized(chat_id, user_id):
            audit_record(
                actor=actor,
                action="telegram.ignored",
                target=str(chat_id),
                data={"chat_id": chat_id, "user_id": user_id, "username": username, "text": shown},
            )
            logger.warning("telegram bot: ignored a message from chat %s user %s", chat_id, user_id)
            return None
        parsed = parse_command(text or "", self.bot_username)
        command = parsed[0] if parsed and parsed[0] in COMMANDS else ""
        audit_record(
            actor=actor,
            action="telegram.command",
            target=command or "unknown",
            data={"chat_id": chat_id, "user_id": user_id, "username": username, "text": shown},
        )
        if parsed is None:
            return f"Not a command.\n\n{self.help_text()}"
        if not command:
            return f"Unknown command /{parsed[0]}.\n\n{self.help_text()}"
        args = parsed[1]
        try:
            return getattr(self, f"_cmd_{command}")(args=args, actor=actor, key=(chat_id, user_id))[
                :MAX_REPLY
            ]
        except Exception as exc:  # noqa: BLE001 - the bot answers, it never dies on a command
            logger.exception("telegram bot: /%s failed", command)
            return f"/{command} failed: {exc.__class__.__name__}: {exc}"[:MAX_REPLY]

    # --- reads -----------------------------------------------------------------------------

    def _cmd_help(self, **_: Any) -> str:
        return self.help_text()

    _cmd_start = _cmd_help

    def _snapshot(self) -> dict[str, Any]:
        return overview_snapshot()

    def _cmd_status(self, **_: Any) -> str:
        state = system_state_get()
        snap = self._snapshot()
        equity = snap["equity"] or {}
        open_positions = [p for p in snap["positions"] if Decimal(p["quantity"]) != 0]
        broker = check_broker()
        feed = check_data_feed(timezone.now())
        lines = [
            f"Mode: {state.mode.upper()} (since {state.changed_at:%Y-%m-%d %H:%M} UTC, "
            f"by {state.changed_by}: {state.reason or '-'})",
            f"Account: {snap['account']}",
            f"Equity: {_money(equity.get('equity'))}",
            f"P&L: {_money(equity.get('pnl'))} ({_pct(equity.get('pnl_pct'))}), "
            f"drawdown {_pct(equity.get('drawdown'))}",
            f"Open positions: {len(open_positions)}",
            f"Broker: {broker.status} - {broker.detail}",
            f"Data feed: {feed.status} - {feed.detail}",
        ]
        return "\n".join(lines)

    def _cmd_pnl(self, **_: Any) -> str:
        snap = self._snapshot()
        equity = snap["equity"]
        if not equity:
            return f"No equity recorded yet for account {snap['account']}."
        risk = risk_overview()
        return "\n".join(
            [
                f"Account {snap['account']} at {equity['ts']}",
                f"Equity: {_money(equity['equity'])}  Cash: {_money(equity['cash'])}",
                f"P&L: {_money(equity['pnl'])} ({_pct(equity['pnl_pct'])})",
                f"Realized: {_money(equity['realized_pnl'])}  "
                f"Unrealized: {_money(equity['unrealized_pnl'])}  Fees: {_money(equity['fees'])}",
                f"Today: {_pct(risk['daily_pnl_pct'])}  Drawdown: {_pct(risk['drawdown'])}",
            ]
        )

    def _cmd_positions(self, **_: Any) -> str:
        snap = self._snapshot()
        rows = [p for p in snap["positions"] if Decimal(p["quantity"]) != 0]
        if not rows:
            return f"No open positions ({snap['account']})."
        lines = [f"Open positions ({snap['account']}):"]
        for p in rows:
            lines.append(
                f"{p['instrument']} {_qty(p['quantity'])} @ {_money(p['avg_price'])} "
                f"last {_money(p['last_price'])} uPnL {_money(p['unrealized_pnl'])}"
            )
        return "\n".join(lines)

    def _cmd_orders(self, **_: Any) -> str:
        snap = self._snapshot()
        rows = [o for o in snap["orders"] if OrderStatus(o["status"]).is_open]
        if not rows:
            return f"No working orders ({snap['account']})."
        lines = [f"Working orders ({snap['account']}):"]
        for o in rows:
            lines.append(
                f"{o['client_order_id']} {o['side']} {_qty(o['quantity'])} {o['instrument']} "
                f"{o['order_type']} {o['status']} (filled {_qty(o['filled_quantity'])})"
            )
        return "\n".join(lines)

    # --- actions ---------------------------------------------------------------------------

    def _mode(self, mode: str, *, args: str, actor: str, default_reason: str) -> str:
        try:
            state = system_mode_set(
                mode=mode, actor=actor, source=ModeSource.TELEGRAM, reason=args or default_reason
            )
        except ModeChangeRefused as exc:
            return f"Refused: {exc.message}"
        return f"Mode is now {state.mode.upper()}."

    def _cmd_pause(self, *, args: str, actor: str, **_: Any) -> str:
        return self._mode("pause", args=args, actor=actor, default_reason="paused from Telegram")

    def _cmd_resume(self, *, args: str, actor: str, **_: Any) -> str:
        return self._mode("normal", args=args, actor=actor, default_reason="resumed from Telegram")

    def _cmd_kill(self, *, args: str, actor: str, key: tuple[int, int | None]) -> str:
        now = self.clock()
        seconds = int(self.confirm_window.total_seconds())
        if args.strip().upper() != "CONFIRM":
            self._kill_armed[key] = now
            return (
                "KILL SWITCH: this cancels every open order and closes every position at every "
                f"broker, then locks trading. Send /kill CONFIRM within {seconds} s to engage."
            )
        armed = self._kill_armed.pop(key, None)
        if armed is None or now - armed > self.confirm_window:
            return f"No /kill to confirm (or it is older than {seconds} s): send /kill first."
        report = kill_switch_engage(
            actor=actor, source=ModeSource.TELEGRAM, reason=f"kill switch from Telegram ({actor})"
        )
        lines = [
            f"KILL engaged (incident #{report.incident_id}).",
            f"Cancels sent: {report.cancels_sent}, closing orders: {len(report.closing_orders)}.",
            "All positions closed." if report.flat else "NOT FLAT: positions still open.",
        ]
        lines += [f"Error: {e}" for e in report.errors[:5]]
        return "\n".join(lines)


def build_application(
    *,
    token: str,
    api_url: str,
    commands: BotCommands,
    poll_timeout: int = 30,
) -> Any:
    """python-telegram-bot's Application answering every message through ``commands``."""
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import sync_to_async
    from django.db import connections
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, TypeHandler

    # One thread of our own for the ORM (its own DB connection; messages handled one at a
    # time, so the /kill confirmation state needs no lock). Not asgiref's shared
    # thread-sensitive executor: a process forked later would inherit it without its thread.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telegram-bot-db")

    def handle_sync(**kwargs: Any) -> str | None:
        close_old_connections()  # a long-lived process: drop connections the server closed
        try:
            return commands.handle(**kwargs)
        finally:
            close_old_connections()

    handle = sync_to_async(handle_sync, thread_sensitive=False, executor=executor)

    async def close_db(_: Any = None) -> None:
        """Close the ORM thread's connections and stop the thread (after shutdown)."""
        await sync_to_async(connections.close_all, thread_sensitive=False, executor=executor)()
        executor.shutdown(wait=True)

    async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message  # new messages only (not edits, not channel posts)
        chat = update.effective_chat
        if message is None or chat is None:
            return
        if not commands.bot_username:
            commands.bot_username = context.bot.username or ""
        user = update.effective_user
        reply = await handle(
            chat_id=chat.id,
            user_id=user.id if user else None,
            username=(user.username or "") if user else "",
            text=message.text,
        )
        if reply:
            await context.bot.send_message(chat_id=chat.id, text=reply)

    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .get_updates_read_timeout(poll_timeout + 10)
        .post_shutdown(close_db)
        .build()
    )
    application.bot_data["close_db"] = close_db
    application.add_handler(TypeHandler(Update, on_update))
    return application
