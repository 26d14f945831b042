"""Run the trading engine on the dev replay feed (recorded real market data, paper broker)."""

from __future__ import annotations

import itertools
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.brokers.services.reconcile import startup_reconcile
from apps.core.pidfile import pidfile
from apps.core.process_metrics import process_metrics_start
from apps.engine.runner import Engine
from apps.marketdata.domain.csvfile import timeframe_from_path
from apps.marketdata.domain.feed import ReplayFeed
from apps.marketdata.models import FeedStatus
from apps.ml.domain.errors import MlError
from apps.model.errors import MarketDataError
from apps.strategies.domain.base import Strategy
from apps.strategies.domain.registry import build_strategy
from apps.trading.services.accounts import account_get_or_create

logger = logging.getLogger("apps.engine.runner")


def _timeframe_label(paths: list[Path]) -> str:
    step = timeframe_from_path(paths[0])
    if step is None:
        return "1m"
    minutes = int(step.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes}m"


class Command(BaseCommand):
    help = (
        "Run the engine: replay recorded market data at --speed x real time through the "
        "strategy, the pre-trade checks and the paper broker. Resumes after the last bar it "
        "stored (the strategy is warmed up on the bars before it). dev and test only: "
        "staging and prod take live feeds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data",
            action="append",
            default=None,
            metavar="CSV",
            help="market data file(s) (default: REPLAY_FILES or every CSV in REPLAY_DATA_DIR)",
        )
        parser.add_argument(
            "--speed",
            type=float,
            default=None,
            help=f"replay speed, x real time; 0 = as fast as possible (default {settings.REPLAY_SPEED})",
        )
        parser.add_argument("--no-loop", action="store_true", help="stop at the end of the data")
        parser.add_argument(
            "--max-bars", type=int, default=None, help="stop after this many live bars"
        )
        parser.add_argument("--account", default=settings.ENGINE_ACCOUNT, help="paper account name")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.ENVIRONMENT.is_deployed:
            raise CommandError(
                "the replay engine runs in dev and test only; staging/prod use live feeds"
            )
        paths = self._paths(options["data"])
        speed = settings.REPLAY_SPEED if options["speed"] is None else options["speed"]
        if speed < 0:
            raise CommandError(f"--speed must be >= 0, got {speed}")
        params = dict(settings.ENGINE_STRATEGY_PARAMS)
        factory = self._strategy_factory(settings.ENGINE_STRATEGY, params)

        account = account_get_or_create(name=options["account"], broker=settings.TRADING_BROKER)
        if account.broker != settings.TRADING_BROKER:
            raise CommandError(
                f"account {account.name} trades at {account.broker}, but TRADING_BROKER="
                f"{settings.TRADING_BROKER}: use another --account or fix TRADING_BROKER"
            )
        # No trading until the books agree with the broker's (OBSERVATION until then).
        run = startup_reconcile(account=account)
        self.stdout.write(
            f"engine: start-up reconciliation #{run.pk}: {run.outcome}"
            + (
                f" ({run.discrepancies_found} discrepancies: trading paused)"
                if run.discrepancies_found
                else ""
            )
            + (f" ({run.error}: staying in observation)" if run.error else "")
        )
        engine = Engine(
            account=account,
            strategy_factory=factory,
            strategy_name=settings.ENGINE_STRATEGY,
            strategy_params=params,
            stake=settings.ENGINE_STAKE,
            timeframe=_timeframe_label(paths),
        )
        # SIGTERM (honcho, docker stop) and Ctrl-C: finish the bar in progress, then stop.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: engine.stop())
        status = FeedStatus.objects.filter(feed=engine.feed_name).first()
        resume_after = status.last_bar_ts if status else None
        loop = settings.REPLAY_LOOP and not options["no_loop"]
        try:
            if resume_after is not None:
                warm = 0
                for bar in ReplayFeed(paths, speed=0, loop=loop):
                    if bar.ts > resume_after:
                        break
                    engine.warm_up(bar)
                    warm += 1
                logger.info(
                    "resuming after %s (%d bars of warm-up)", resume_after.isoformat(), warm
                )
            feed = ReplayFeed(
                paths, speed=speed, loop=loop, on_reject=engine.on_reject, start=resume_after
            )
            self.stdout.write(
                f"engine: account {account.name}, strategy {settings.ENGINE_STRATEGY} {params}, "
                f"{len(paths)} file(s) at {speed:g}x"
                + (f", resuming after {resume_after:%Y-%m-%d %H:%M}Z" if resume_after else "")
            )
            bars = (
                feed if options["max_bars"] is None else itertools.islice(feed, options["max_bars"])
            )
            # The pid file lets `manage.py shutdown_graceful` stop the engine (SIGTERM).
            with pidfile(Path(settings.ENGINE_PIDFILE)):
                process_metrics_start(process="engine")  # its CPU/RSS on /metrics
                count = engine.run(bars)
        except MarketDataError as exc:
            raise CommandError(str(exc)) from exc
        if engine.stopping:
            self.stdout.write(f"engine: stopped cleanly after {count} bars")
        else:
            self.stdout.write(f"engine: end of data after {count} bars")

    def _strategy_factory(self, name: str, params: dict[str, str]) -> Callable[[], Strategy]:
        """The live strategy: "ml" runs the active model with every prediction logged."""
        if name == "ml":
            # Lazy: apps.ml.services loads joblib, needed only when the strategy is "ml".
            from apps.ml.services import ml_strategy_live

            try:
                ml_strategy_live()
            except MlError as exc:
                raise CommandError(f"ENGINE_STRATEGY=ml: {exc}") from exc
            return ml_strategy_live
        try:
            build_strategy(name, params)
        except ValueError as exc:
            raise CommandError(f"{exc} (set ENGINE_STRATEGY / ENGINE_STRATEGY_PARAMS)") from exc
        return lambda: build_strategy(name, params)

    def _paths(self, given: list[str] | None) -> list[Path]:
        if given:
            paths = [Path(p) for p in given]
        elif settings.REPLAY_FILES:
            paths = [Path(p) for p in settings.REPLAY_FILES]
        else:
            paths = sorted(Path(settings.REPLAY_DATA_DIR).glob("*.csv*"))
        if not paths:
            raise CommandError(
                f"no market data to replay in {settings.REPLAY_DATA_DIR}: pass --data FILE.csv "
                "or set REPLAY_FILES / REPLAY_DATA_DIR"
            )
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise CommandError(f"market data file(s) not found: {', '.join(missing)}")
        return paths
