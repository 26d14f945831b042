"""Run the trading engine: every active trading plan, on live feeds or recorded data."""

from __future__ import annotations

import logging
import signal
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Account, Broker
from apps.brokers.models import ReconciliationRun
from apps.brokers.services.reconcile import startup_reconcile
from apps.core.pidfile import pidfile
from apps.core.process_metrics import process_metrics_start
from apps.engine.feeds.base import LiveFeed, Subscription, timeframe_delta
from apps.engine.feeds.replay import ReplayLiveFeed, replay_series
from apps.engine.live import LiveLoop, PlansUnusable, QueueSink
from apps.engine.runner import Engine, EnginePlan
from apps.engine.selectors import PlanSpec, plans_active, plans_version
from apps.engine.watchdog import feeds_watch
from apps.marketdata.config import validation_config_for
from apps.ml.domain.errors import MlError
from apps.model.errors import MarketDataError
from apps.strategies.domain.base import Strategy
from apps.strategies.domain.registry import build_strategy
from apps.trading.venues.factory import venues_reset

logger = logging.getLogger("apps.engine.runner")

LIVE_FEEDS = (Broker.KRAKEN.value, Broker.IBKR.value)


def strategy_factory(name: str, params: dict[str, Any]) -> Callable[[], Strategy]:
    """A factory for the plan's strategy, checked once now (CommandError if it cannot be built).

    "ml" runs the active model with every prediction logged."""
    if name == "ml" and "model" not in params:
        # Lazy: apps.ml.services loads joblib, needed only for ML plans.
        from apps.ml.services import ml_strategy_live

        threshold = params.get("threshold")
        kwargs: dict[str, Any] = (
            {} if threshold in (None, "", "default") else {"threshold": float(threshold)}
        )
        try:
            ml_strategy_live(**kwargs)
        except (MlError, ValueError) as exc:
            raise CommandError(f"strategy ml: {exc}") from exc
        return lambda: ml_strategy_live(**kwargs)
    try:
        build_strategy(name, params)
    except ValueError as exc:
        raise CommandError(f"strategy {name}: {exc}") from exc
    return lambda: build_strategy(name, params)


def engine_plans(specs: Sequence[PlanSpec]) -> list[EnginePlan]:
    """The engine's view of the active plans (accounts loaded, strategies checked)."""
    accounts = {a.pk: a for a in Account.objects.filter(pk__in={s.account_id for s in specs})}
    warmup = settings.ENGINE_WARMUP_BARS
    plans = []
    for spec in specs:
        try:
            factory = strategy_factory(spec.strategy, dict(spec.params))
        except CommandError as exc:
            raise CommandError(f"trading plan #{spec.id}: {exc}") from exc
        plans.append(
            EnginePlan(
                key=f"plan-{spec.id}",
                account=accounts[spec.account_id],
                instrument=spec.instrument,
                timeframe=spec.timeframe,
                strategy_name=spec.strategy,
                strategy_params=dict(spec.params),
                stake=spec.stake,
                strategy_factory=factory,
                venue=spec.venue,
                warm_from=None
                if spec.created_at is None
                else spec.created_at - warmup * timeframe_delta(spec.timeframe),
            )
        )
    return plans


def live_feeds_for(engine: Engine) -> Callable[[Sequence[Subscription], QueueSink], list[LiveFeed]]:
    """A feeds factory: one live feed per venue, each with the series its plans name."""

    def factory(subs: Sequence[Subscription], sink: QueueSink) -> list[LiveFeed]:
        venues = plan_venues(engine.plans)
        by_feed: dict[str, list[Subscription]] = defaultdict(list)
        for sub in subs:
            by_feed[venues[sub.instrument]].append(sub)
        feeds: list[LiveFeed] = []
        for name, group in sorted(by_feed.items()):
            validation = {s.instrument: validation_config_for(s.instrument) for s in group}
            if name == Broker.KRAKEN:
                from apps.engine.feeds.kraken import KrakenFeed

                feeds.append(KrakenFeed.from_settings(group, sink, validation=validation))
            else:
                from apps.engine.feeds.ibkr import IbkrFeed

                feeds.append(IbkrFeed.from_settings(group, sink, validation=validation))
        return feeds

    return factory


def plan_venues(plans: Sequence[EnginePlan]) -> dict[str, str]:
    """instrument -> the live feed of its plans (their venue); paper plans are the replay."""
    venues: dict[str, str] = {}
    for plan in plans:
        assert plan.instrument is not None
        venue = plan.venue
        if venue not in LIVE_FEEDS:
            raise CommandError(
                f"trading plan {plan.key} ({plan.instrument} {plan.timeframe}) has venue "
                f"{venue}: that is the dev replay; staging/prod stream bars from "
                f"{' or '.join(LIVE_FEEDS)} (a paper account may use either)"
            )
        if venues.setdefault(plan.instrument, venue) != venue:
            raise CommandError(
                f"{plan.instrument}: plans name two venues ({venues[plan.instrument]}, {venue}) "
                "for its bars: use one"
            )
    return venues


def engine_startup_reconcile(
    plans: Sequence[EnginePlan],
) -> list[tuple[Account, ReconciliationRun]]:
    """The start-up reconciliation of every plan's account, on the brokers' control sessions,
    closed afterwards: the engine never sends orders, and the execution worker's session
    (IBKR: its client id, which TWS accepts once) must stay free for the worker."""
    runs = []
    try:
        for account in {p.account.pk: p.account for p in plans}.values():
            runs.append((account, startup_reconcile(account=account, purpose="control")))
    finally:
        venues_reset()
    return runs


class Command(BaseCommand):
    help = (
        "Run the trading engine on every active trading plan (admin or panel: Trading plans). "
        "Staging and prod stream live bars from each plan's venue (Kraken, Interactive "
        "Brokers); dev and test replay recorded files at --speed x real time. Each series resumes after its last stored bar, "
        "strategies warmed up on the stored bars; nothing trades until the start-up "
        "reconciliation is clean. SIGTERM finishes the bar in progress."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            choices=("replay", "live"),
            default=None,
            help="where bars come from (default: live in staging/prod, replay in dev/test; "
            "staging/prod refuse replay)",
        )
        parser.add_argument(
            "--data",
            action="append",
            default=None,
            metavar="CSV",
            help="replay: market data file(s) (default: REPLAY_FILES or every CSV in "
            "REPLAY_DATA_DIR)",
        )
        parser.add_argument(
            "--speed",
            type=float,
            default=None,
            help=f"replay speed, x real time; 0 = as fast as possible (default {settings.REPLAY_SPEED})",
        )
        parser.add_argument(
            "--no-loop", action="store_true", help="replay: stop at the end of the data"
        )
        parser.add_argument(
            "--max-bars", type=int, default=None, help="stop after this many processed bars"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deployed = settings.ENVIRONMENT.is_deployed
        source = options["source"] or ("live" if deployed else "replay")
        if source == "replay" and deployed:
            raise CommandError(
                "staging/prod run live feeds: --source replay is for dev and test only"
            )
        speed = settings.REPLAY_SPEED if options["speed"] is None else options["speed"]
        if speed < 0:
            raise CommandError(f"--speed must be >= 0, got {speed}")
        if options["max_bars"] is not None and options["max_bars"] < 1:
            raise CommandError(f"--max-bars must be >= 1, got {options['max_bars']}")

        version, specs = plans_version(), plans_active()
        if not specs:
            raise CommandError(
                "no active trading plan: add one in the admin or the panel (Trading plans)"
                + ("" if deployed else ", or run `manage.py plans_seed` for the replay plans")
            )
        plans = engine_plans(specs)
        paths = self._paths(options["data"]) if source == "replay" else []

        def usable(plans: list[EnginePlan]) -> list[EnginePlan]:
            """The plans if this source can run them all (CommandError naming what not)."""
            if source == "live":
                plan_venues(plans)
                return plans
            missing = sorted(
                {(p.instrument, p.timeframe) for p in plans} - set(replay_series(paths))
            )
            if missing:
                raise CommandError(
                    "no replay file for "
                    + ", ".join(f"{i} {tf}" for i, tf in missing)
                    + f" (files: {', '.join(p.name for p in paths)}): pass --data or "
                    "deactivate those plans"
                )
            return plans

        usable(plans)
        loop = settings.REPLAY_LOOP and not options["no_loop"]

        def replay_feeds(subs: Sequence[Subscription], sink: QueueSink) -> list[LiveFeed]:
            return [
                ReplayLiveFeed(
                    subs,
                    sink,
                    paths=paths,
                    speed=speed,
                    loop=loop,
                    validation_for=validation_config_for,
                )
            ]

        # No trading until the books agree with the broker's (OBSERVATION until then).
        for account, run in engine_startup_reconcile(plans):
            self.stdout.write(
                f"engine: start-up reconciliation of {account.name} #{run.pk}: {run.outcome}"
                + (
                    f" ({run.discrepancies_found} discrepancies: trading paused)"
                    if run.discrepancies_found
                    else ""
                )
                + (f" ({run.error}: staying in observation)" if run.error else "")
            )

        engine = Engine(plans=plans, default_feed=source)
        feeds_factory = live_feeds_for(engine) if source == "live" else replay_feeds

        current: dict[str, list[EnginePlan]] = {version: plans}

        def reload() -> tuple[str, list[EnginePlan]]:
            """The plans at their current version; built (strategies checked, a model
            loaded) only when the version changed."""
            version = plans_version()
            if version not in current:
                try:
                    built = usable(engine_plans(plans_active()))
                except CommandError as exc:
                    raise PlansUnusable(version, str(exc)) from exc
                current.clear()
                current[version] = built
            return version, current[version]

        live = LiveLoop(
            engine,
            feeds_factory=feeds_factory,
            plans_source=reload,
            plans_version=version,
            watch=feeds_watch if source == "live" else None,
            max_bars=options["max_bars"],
            settle_delay=settings.ENGINE_SETTLE_DELAY_SECONDS,
        )
        # SIGTERM (honcho, docker stop) and Ctrl-C: finish the bar in progress, then stop.
        # The previous handlers come back when the command returns (called in-process, it
        # must not leave its handler to later code or to processes forked from it).
        previous = {
            sig: signal.signal(sig, lambda *_: live.stop())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        self.stdout.write(
            f"engine: {len(plans)} plan(s) on {len(engine.series())} series from {source}"
            + (f" at {speed:g}x" if source == "replay" else "")
            + ": "
            + "; ".join(
                f"{p.account.name} {p.instrument} {p.timeframe} {p.strategy_name} "
                f"{p.strategy_params} stake {p.stake}"
                for p in plans
            )
        )
        for instrument, timeframe in engine.series():
            resume = engine.resume_after(instrument, timeframe)
            if resume is not None:
                self.stdout.write(f"engine: {instrument} {timeframe} resumes after {_utc(resume)}")
        try:
            # The pid file lets `manage.py shutdown_graceful` stop the engine (SIGTERM).
            with pidfile(Path(settings.ENGINE_PIDFILE)):
                metrics = process_metrics_start(process="engine")  # its CPU/RSS on /metrics
                try:
                    count = live.run()
                finally:
                    metrics.set()
        except (MarketDataError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if engine.stopping:
            self.stdout.write(f"engine: stopped cleanly after {count} bars")
        else:
            self.stdout.write(f"engine: end of data after {count} bars")

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


def _utc(ts: datetime) -> str:
    return f"{ts:%Y-%m-%d %H:%M}Z"
