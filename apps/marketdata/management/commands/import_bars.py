"""Import recorded OHLCV CSV files into the bars table (bulk COPY, idempotent)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.marketdata.config import validation_config_for
from apps.marketdata.domain.csvfile import (
    Rejection,
    instrument_from_path,
    read_bars,
    timeframe_from_path,
)
from apps.marketdata.services import bars_store, feed_status_update
from apps.model.errors import MarketDataError

BATCH = 20_000


def timeframe_label(path: Path) -> str:
    step = timeframe_from_path(path)
    if step is None:
        raise CommandError(
            f"{path}: no timeframe in the file name (expected e.g. BTC-USD_1m_venue.csv): "
            "pass --timeframe"
        )
    seconds = int(step.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Command(BaseCommand):
    help = (
        "Import OHLCV CSV files (header timestamp,open,high,low,close,volume; plain or .csv.gz) into "
        "the bars table with COPY. Bad rows (NaN, non-positive price, a price or volume too large or "
        "too small for the table, high < low, open/close outside [low, high], negative volume, "
        "duplicate, out-of-order or future timestamp, an absurd jump from the previous close: "
        "limits per instrument in MARKETDATA_VALIDATION) are rejected, counted and reported with "
        "file and line; bars already stored are skipped, so a re-import is harmless."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="CSV")
        parser.add_argument(
            "--timeframe", help="bar timeframe label, e.g. 1m (default: from the file name)"
        )
        parser.add_argument("--feed", default="import", help="feed name for the freshness record")

    def handle(self, *args: Any, **options: Any) -> None:
        total_new = 0
        for name in options["files"]:
            path = Path(name)
            timeframe = options["timeframe"] or timeframe_label(path)
            rejected: Counter[str] = Counter()

            def on_reject(r: Rejection, rejected: Counter[str] = rejected) -> None:
                rejected[r.reason] += 1
                self.stderr.write(f"{r.source}:{r.line}: rejected ({r.reason}): {r.raw[:100]}")

            try:
                bars = read_bars(
                    path,
                    on_reject=on_reject,
                    validation=validation_config_for(instrument_from_path(path)),
                )
                new = read = 0
                last_ts = None
                with tqdm(desc=path.name, unit=" bars", disable=None) as progress:
                    while batch := list(itertools.islice(bars, BATCH)):
                        new += bars_store(bars=batch, timeframe=timeframe)
                        read += len(batch)
                        last_ts = batch[-1].ts
                        progress.update(len(batch))
            except MarketDataError as exc:
                raise CommandError(str(exc)) from exc
            feed_status_update(
                feed=options["feed"], last_bar_ts=last_ts, accepted=read, rejected=rejected
            )
            total_new += new
            self.stdout.write(
                f"{path}: {read} good bars ({new} new), {sum(rejected.values())} rejected"
                + (f" {dict(rejected)}" if rejected else "")
            )
        self.stdout.write(f"imported {total_new} new bars")
