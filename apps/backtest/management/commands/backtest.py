"""Backtest a strategy over recorded bars; no database, Redis or network needed.

Thin: parse and validate the arguments, then call ``run_backtest`` (the same strategy,
pre-trade check, order, paper matching and accounting code as the engine), print the
summary and write the trades CSV.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)

from apps.backtest.domain.backtest import (
    DEFAULT_CAPITAL,
    TRADES_COLUMNS,
    iter_trades_rows,
    run_backtest,
)
from apps.marketdata.config import validation_config_for
from apps.marketdata.domain.csvfile import instrument_from_path, read_bars
from apps.model.errors import MarketDataError
from apps.strategies.domain.registry import STRATEGIES, build_strategy, strategy_params

if TYPE_CHECKING:
    from apps.backtest.domain.backtest import BacktestResult
    from apps.marketdata.domain.csvfile import Rejection

EXIT_BAD_INPUT = 2

SEMANTICS = """\
semantics:
  - A signal is computed at a bar's close from data up to and including that bar; its
    market order fills at the instrument's NEXT bar's open. The last bar produces no order.
  - One position per instrument (long only). Each entry spends a fixed --stake in the quote
    currency: quantity = stake / fill price, at full Decimal precision (28 significant
    digits), rounded down only when the instrument defines a lot size.
  - Fees: --fee x notional, charged at entry and at exit.
    Trade P&L = exit notional - exit fee - (entry notional + entry fee).
  - At one bar time, entry fills are processed before exit fills (across instruments).
  - A position still open at the end is closed at its instrument's last bar's close (exit
    fee charged); the summary counts such positions ("closed at end of data").
  - Equity = cash + open positions at their last close, sampled after each bar time; P&L %
    and max drawdown (largest fall from a running peak, % of the peak) are relative to
    --capital (default 10000). There is no cash limit on entries.
  - The instrument is the file name before the first underscore
    (ETH-BTC_5m_bittrex.csv -> ETH-BTC); one file per instrument, bars merged by time.
  - --trades-out columns: instrument,entry_time,exit_time,entry_price,exit_price,quantity,
    entry_fee,exit_fee,pnl. Times are the open times (ISO-8601 UTC) of the bars whose open
    filled the orders; for a position closed at the end, the last bar's open time.
  - Bad input (missing or malformed CSV, unknown strategy or parameter, negative stake or
    fee) prints one error line and exits with status 2; nothing is written. A malformed
    CSV row fails the run unless --skip-bad-rows is given (then rows are skipped and
    counted in the summary).

example:
  python manage.py backtest --strategy sma_cross --param fast=10 --param slow=30 \\
      --data ETH-BTC_5m_bittrex.csv --stake 100 --fee 0.001 --trades-out trades.csv
"""


class _BadInput(Exception):
    """Raised from the reader's reject callback to stop at the first bad row."""


class _OneLineParser(CommandParser):
    """Argument errors as one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        if getattr(self, "called_from_command_line", False):
            self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")
        raise CommandError(f"Error: {message}", returncode=EXIT_BAD_INPUT)


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the semantics epilog kept as written."""


def _bad(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_BAD_INPUT)


def _decimal(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _bad(f"{option} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise _bad(f"{option} must be a finite number, got {value!r}")
    return number


def _count_rows(path: Path) -> int:
    """Data lines in a CSV (for the progress bar total); cheap next to the backtest."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    count = 0
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return max(count - 1, 0)


class Command(BaseCommand):
    help = (
        "Backtest a strategy over recorded OHLCV CSV files, as fast as possible, through "
        "the same strategy, pre-trade check, order, paper fill and accounting code as the "
        "engine. Prints a summary and writes the trades to a CSV. Needs no database or Redis."
    )
    requires_system_checks: list[str] = []  # noqa: RUF012 - Django's attribute
    requires_migrations_checks = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("epilog", SEMANTICS)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds a CommandParser itself; switch it to the subclass that only
        # changes how argument errors are reported (no new state).
        parser.__class__ = _OneLineParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--strategy", help=f"strategy name: {', '.join(sorted(STRATEGIES))}")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="strategy parameter, repeatable (sma_cross: fast=N slow=N, windows in bars)",
        )
        parser.add_argument(
            "--data",
            action="append",
            default=[],
            metavar="CSV",
            help="OHLCV file (.csv or .csv.gz), repeatable; one per instrument",
        )
        parser.add_argument("--stake", help="quote currency spent per entry, > 0")
        parser.add_argument("--fee", help="fee rate per fill, e.g. 0.001 = 0.1%%; >= 0")
        parser.add_argument(
            "--capital",
            default=str(DEFAULT_CAPITAL),
            help="starting cash for equity, P&L %% and drawdown (default %(default)s)",
        )
        parser.add_argument("--trades-out", metavar="CSV", help="where to write the trades")
        parser.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help="skip and count malformed CSV rows instead of failing",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        strategy_name: str | None = options["strategy"]
        if not strategy_name:
            raise _bad(f"--strategy is required; choose one of: {', '.join(sorted(STRATEGIES))}")
        params = self._params(strategy_name, options["param"])
        stake = _decimal(options["stake"], "--stake")
        fee = _decimal(options["fee"], "--fee")
        capital = _decimal(options["capital"], "--capital")
        if stake is None or stake <= 0:
            raise _bad("--stake must be a positive amount of quote currency, e.g. --stake 100")
        if fee is None or fee < 0 or fee >= 1:
            raise _bad("--fee must be a fee rate from 0 to below 1, e.g. --fee 0.001 for 0.1%")
        if capital is None or capital <= 0:
            raise _bad("--capital must be a positive amount, e.g. --capital 10000")
        paths = [Path(p) for p in options["data"]]
        if not paths:
            raise _bad("no market data: pass --data FILE.csv (repeat for more instruments)")
        trades_out = options["trades_out"]
        if not trades_out:
            raise _bad("pass --trades-out FILE.csv to say where to write the trades")
        out_path = Path(trades_out)
        if not out_path.parent.is_dir():
            raise _bad(f"--trades-out directory does not exist: {out_path.parent}; create it")

        # Build the strategy once now so bad parameter values fail before any reading.
        try:
            build_strategy(strategy_name, params)
        except ValueError as exc:
            raise _bad(str(exc)) from None

        skip_bad_rows: bool = options["skip_bad_rows"]
        rejected: dict[str, int] = {}

        def on_reject(rejection: Rejection) -> None:
            if not skip_bad_rows:
                raise _BadInput(
                    f"malformed row in {rejection.source} line {rejection.line}: "
                    f"{rejection.reason} ({rejection.raw[:80]!r}); fix or remove the row, "
                    f"or pass --skip-bad-rows to skip such rows"
                )
            rejected[rejection.source] = rejected.get(rejection.source, 0) + 1

        sources = {}
        try:
            for path in paths:
                instrument = instrument_from_path(path)
                if instrument in sources:
                    raise _bad(
                        f"two --data files for instrument {instrument} ({path}); "
                        f"pass one file per instrument"
                    )
                sources[instrument] = read_bars(
                    path, on_reject=on_reject, validation=validation_config_for(instrument)
                )
        except MarketDataError as exc:
            raise _bad(exc.message) from None

        progress = self._progress(paths, options["no_progress"])
        try:
            result = run_backtest(
                sources,
                lambda: build_strategy(strategy_name, params),
                stake=stake,
                fee_rate=fee,
                capital=capital,
                progress=progress,
            )
        except _BadInput as exc:
            raise _bad(str(exc)) from None
        except MarketDataError as exc:
            raise _bad(exc.message) from None
        finally:
            if progress is not None:
                progress.close()  # type: ignore[attr-defined]

        self._write_trades(out_path, result)
        self._print_summary(strategy_name, params, stake, fee, result, rejected, out_path)

    def _params(self, strategy_name: str, raw: list[str]) -> dict[str, str]:
        try:
            accepted = strategy_params(strategy_name)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        params: dict[str, str] = {}
        for item in raw:
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise _bad(f"--param must look like KEY=VALUE, got {item!r} (e.g. --param fast=10)")
            if key not in accepted:
                raise _bad(
                    f"unknown parameter {key!r} for strategy {strategy_name!r}; "
                    f"accepted: {', '.join(accepted)}"
                )
            if key in params:
                raise _bad(f"--param {key} given twice; give it once")
            params[key] = value
        return params

    def _progress(self, paths: list[Path], disabled: bool) -> Any:
        if disabled:
            return None
        from tqdm import tqdm

        try:
            total = sum(_count_rows(p) for p in paths)
        except OSError:
            total = None  # the reader reports the real problem
        bar = tqdm(
            total=total,
            unit="bar",
            unit_scale=True,
            file=sys.stderr,
            desc="backtest",
            mininterval=0.2,
            leave=False,
        )

        class _Progress:
            def __call__(self, done: int) -> None:
                bar.update(done - bar.n)

            def close(self) -> None:
                bar.close()

        return _Progress()

    def _write_trades(self, out_path: Path, result: BacktestResult) -> None:
        # Write next to the target, then rename: a failure leaves no partial file.
        fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(TRADES_COLUMNS)
                writer.writerows(iter_trades_rows(result.trades))
            os.replace(tmp, out_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _print_summary(
        self,
        strategy_name: str,
        params: dict[str, str],
        stake: Decimal,
        fee: Decimal,
        result: BacktestResult,
        rejected: dict[str, int],
        out_path: Path,
    ) -> None:
        s = result.summary
        quotes = {name.rpartition("-")[2] for name in s.instruments if "-" in name}
        unit = f" {quotes.pop()}" if len(quotes) == 1 else ""
        span = (
            f"{s.start:%Y-%m-%d %H:%M} .. {s.end:%Y-%m-%d %H:%M} UTC"
            if s.start and s.end
            else "no data"
        )
        param_text = " ".join(f"{k}={v}" for k, v in params.items())
        lines = [
            f"backtest {strategy_name} {param_text} on {', '.join(s.instruments) or '-'}",
            f"  {s.bars} bars, {span}; stake {stake}{unit}, fee rate {fee}, "
            f"capital {s.capital}{unit}",
            f"trades        {s.trades}",
            f"wins          {s.wins}",
            f"losses        {s.losses}",
            f"total P&L     {s.pnl:.8f}{unit}",
            f"total P&L %   {s.pnl_pct:.4f} %",
            f"fees          {s.fees:.8f}{unit}",
            f"max drawdown  {s.max_drawdown * 100:.4f} %",
            f"final equity  {s.final_equity:.8f}{unit}",
        ]
        if s.closed_at_end:
            noun = "position" if s.closed_at_end == 1 else "positions"
            lines.append(f"{s.closed_at_end} {noun} closed at end of data (at the last close)")
        if s.denied:
            lines.append(f"{s.denied} orders denied by the pre-trade check")
        if rejected:
            detail = ", ".join(f"{Path(src).name}: {n}" for src, n in rejected.items())
            lines.append(f"skipped {sum(rejected.values())} bad rows ({detail})")
        lines.append(f"trades written to {out_path}")
        self.stdout.write("\n".join(lines))
