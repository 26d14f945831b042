"""Seed the trading plans of the dev replay from the ENGINE_* settings (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.cli import cli_actor
from apps.engine.feeds.base import TIMEFRAMES
from apps.engine.models import ML_LIVE_PARAMS, ML_STRATEGY, TradingPlan
from apps.engine.services import plan_create, validation_text
from apps.marketdata.domain.csvfile import instrument_from_path, timeframe_from_path
from apps.marketdata.services import instrument_get_or_create
from apps.trading.services.accounts import account_get_or_create


def replay_paths(given: list[str] | None) -> list[Path]:
    """--data, else REPLAY_FILES, else every CSV in REPLAY_DATA_DIR (as run_engine picks them)."""
    if given:
        return [Path(p) for p in given]
    if settings.REPLAY_FILES:
        return [Path(p) for p in settings.REPLAY_FILES]
    return sorted(Path(settings.REPLAY_DATA_DIR).glob("*.csv*"))


def timeframe_label(path: Path) -> str:
    """``BTC-USD_1m_coinbase.csv`` -> ``"1m"``; a name without one is 1m (as run_engine)."""
    step = timeframe_from_path(path)
    if step is None:
        return "1m"
    for label, delta in TIMEFRAMES.items():
        if delta == step:
            return label
    raise CommandError(
        f"{path.name}: timeframe {step} is not one a plan may use ({', '.join(TIMEFRAMES)})"
    )


def seed_params(strategy: str, params: dict[str, str]) -> dict[str, str]:
    """ENGINE_STRATEGY_PARAMS as the plan's params. For ``ml`` on the active model only its
    own keys count (ENGINE_STRATEGY=ml ignored the sma_cross defaults, and so does this)."""
    if strategy == ML_STRATEGY and "model" not in params:
        return {k: v for k, v in params.items() if k in ML_LIVE_PARAMS}
    return dict(params)


class Command(BaseCommand):
    help = (
        "Create the trading plans the dev replay runs: for each replay file (--data, else "
        "REPLAY_FILES, else every CSV in REPLAY_DATA_DIR) one plan on the paper account "
        "ENGINE_ACCOUNT (broker TRADING_BROKER; venue = that broker), instrument and "
        "timeframe from the file name (BTC-USD_1m_coinbase.csv -> BTC-USD, 1m), strategy "
        "ENGINE_STRATEGY with ENGINE_STRATEGY_PARAMS, stake ENGINE_STAKE. Idempotent: a plan "
        "that already exists for that account, venue, instrument, timeframe and strategy is "
        "left as it is (edits made in the panel or admin are kept, and so is a deactivated "
        "plan). The ENGINE_* settings are only these defaults; the engine trades the plans."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data",
            action="append",
            default=None,
            metavar="CSV",
            help="replay file(s) to seed plans for (default: REPLAY_FILES or REPLAY_DATA_DIR/*.csv*)",
        )
        parser.add_argument(
            "--account", default=settings.ENGINE_ACCOUNT, help="account name (ENGINE_ACCOUNT)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        paths = replay_paths(options["data"])
        if not paths:
            raise CommandError(
                f"no replay files in {settings.REPLAY_DATA_DIR}: pass --data FILE.csv "
                "or set REPLAY_FILES / REPLAY_DATA_DIR"
            )
        account = account_get_or_create(name=options["account"], broker=settings.TRADING_BROKER)
        strategy = settings.ENGINE_STRATEGY
        params = seed_params(strategy, dict(settings.ENGINE_STRATEGY_PARAMS))
        actor = cli_actor()
        created = kept = 0
        for path in paths:
            timeframe = timeframe_label(path)
            try:
                instrument = instrument_get_or_create(symbol=instrument_from_path(path))
            except ValueError as exc:
                raise CommandError(f"{path.name}: {exc}") from exc
            existing = TradingPlan.objects.filter(
                account=account,
                venue=account.broker,
                instrument=instrument,
                timeframe=timeframe,
                strategy=strategy,
            ).first()
            if existing is not None:
                kept += 1
                self.stdout.write(f"plans_seed: kept plan {existing.pk}: {existing}")
                continue
            try:
                plan = plan_create(
                    account=account,
                    venue=account.broker,
                    instrument=instrument,
                    timeframe=timeframe,
                    strategy=strategy,
                    params=params,
                    stake=settings.ENGINE_STAKE,
                    actor=actor,
                )
            except ValidationError as exc:
                raise CommandError(
                    f"{path.name}: plan refused: {validation_text(exc)} "
                    "(check ENGINE_STRATEGY / ENGINE_STRATEGY_PARAMS / ENGINE_STAKE)"
                ) from exc
            created += 1
            self.stdout.write(f"plans_seed: created plan {plan.pk}: {plan}")
        self.stdout.write(
            f"plans_seed: account {account.name}: {created} created, {kept} already there"
        )
