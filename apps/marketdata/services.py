"""Storing bars and tracking feed freshness (``data_feed_last_update``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from apps.core.realtime import GROUP_PANEL, broadcast
from apps.marketdata.models import AssetClass, Bar, FeedStatus, Instrument
from apps.model.bars import Bar as BarValue

logger = logging.getLogger(__name__)


def instrument_get_or_create(
    *, symbol: str, tick_size: Decimal | None = None, lot_size: Decimal | None = None
) -> Instrument:
    """The instrument for ``symbol``: ``BASE-QUOTE`` is crypto, a plain ticker an equity."""
    symbol = symbol.strip().upper()
    if not symbol:
        raise ValueError("instrument symbol is empty: use BASE-QUOTE (crypto) or a ticker (equity)")
    if "-" in symbol:
        base, _, quote = symbol.partition("-")
        defaults = {"base": base, "quote": quote, "asset_class": AssetClass.CRYPTO}
    else:
        defaults = {"base": symbol, "quote": "USD", "asset_class": AssetClass.EQUITY}
    defaults.update(tick_size=tick_size, lot_size=lot_size)
    instrument, _ = Instrument.objects.get_or_create(symbol=symbol, defaults=defaults)
    return instrument


def _instrument_ids(symbols: Iterable[str]) -> dict[str, int]:
    return {s: instrument_get_or_create(symbol=s).pk for s in set(symbols)}


def bars_store(*, bars: Iterable[BarValue], timeframe: str) -> int:
    """Bulk-store bars with COPY; bars already stored are skipped. Returns rows inserted.

    COPY goes into a temporary table first, then one INSERT ... ON CONFLICT DO
    NOTHING moves the new rows, so a re-import of the same file is harmless.
    """
    bars = list(bars)
    if not bars:
        return 0
    ids = _instrument_ids(b.instrument for b in bars)
    table = Bar._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # Dropped at the end even inside a caller's longer transaction.
        cursor.execute("DROP TABLE IF EXISTS _bars_in")
        cursor.execute(
            f"CREATE TEMP TABLE _bars_in (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        with cursor.copy(
            "COPY _bars_in (instrument_id, timeframe, ts, open, high, low, close, volume) FROM STDIN"
        ) as copy:
            for b in bars:
                copy.write_row(
                    (ids[b.instrument], timeframe, b.ts, b.open, b.high, b.low, b.close, b.volume)
                )
        cursor.execute(
            f"INSERT INTO {table} SELECT * FROM _bars_in ON CONFLICT DO NOTHING"  # noqa: S608
        )
        inserted = cursor.rowcount
        cursor.execute("DROP TABLE _bars_in")
        return inserted


def bar_store(*, bar: BarValue, timeframe: str, instrument_id: int) -> None:
    """Store one live bar (the engine's path); a duplicate is ignored."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Bar._meta.db_table} "  # noqa: S608
            "(instrument_id, timeframe, ts, open, high, low, close, volume) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [instrument_id, timeframe, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume],
        )


def feed_status_update(
    *,
    feed: str,
    last_bar_ts: datetime | None,
    accepted: int = 0,
    rejected: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> FeedStatus:
    """Record good bars (their count and the wall time) and rejected rows by reason."""
    now = now or timezone.now()
    with transaction.atomic():
        status, _ = FeedStatus.objects.select_for_update().get_or_create(feed=feed)
        if accepted:
            status.bars_accepted += accepted
            status.last_update = now
            status.last_bar_ts = last_bar_ts
        if rejected:
            counts = dict(status.rejections)
            for reason, n in rejected.items():
                counts[reason] = counts.get(reason, 0) + n
                status.bars_rejected += n
            status.rejections = counts
        status.save()
        broadcast(GROUP_PANEL, "feed.updated", feed_payload(status))
    return status


def feed_payload(status: FeedStatus) -> dict[str, object]:
    return {
        "feed": status.feed,
        "last_update": status.last_update,
        "last_bar_ts": status.last_bar_ts,
        "bars_accepted": status.bars_accepted,
        "bars_rejected": status.bars_rejected,
    }
