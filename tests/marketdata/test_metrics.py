from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.marketdata.services import feed_status_update

pytestmark = pytest.mark.django_db


def samples(body: str, name: str) -> dict[str, float]:
    return {
        s.labels.get("feed", ""): s.value
        for family in text_string_to_metric_families(body)
        if family.name == name
        for s in family.samples
    }


def test_metrics_when_feed_updated_then_data_feed_last_update_is_its_unix_time(client) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    feed_status_update(feed="replay", last_bar_ts=now, accepted=3, rejected={"nan": 2}, now=now)

    body = client.get("/metrics").content.decode()

    assert samples(body, "data_feed_last_update") == {"replay": now.timestamp()}
    assert samples(body, "data_feed_bars_rejected") == {"replay": 2.0}
