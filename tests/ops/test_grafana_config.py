"""Grafana provisioning and dashboards: the files compose mounts, the panels of spec table 4.3.

Every panel's query is run against a real Prometheus in
tests/integration/test_observability.py; this checks the files themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "config" / "grafana"
# Spec table 4.3: dashboard -> the panels it must have (by title, case-insensitive).
SPEC_PANELS = {
    "Tradebot / Overview": ["P&L", "Drawdown", "Open positions", "System mode"],
    "Tradebot / Trading": ["Orders per day", "Fill rate", "Slippage"],
    "Tradebot / Risk": ["Exposure", "VaR", "Correlations"],
    "Tradebot / System": ["CPU", "RAM", "latency", "errors|status|failures"],
    "Tradebot / ML": ["Calibration", "Predictions", "drift"],
}


def _boards() -> dict[str, dict]:
    return {
        b["title"]: b
        for b in (
            json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
        )
    }


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())


def test_dashboards_when_read_then_the_five_of_the_spec_with_its_panels() -> None:
    import re

    boards = _boards()

    assert set(boards) == set(SPEC_PANELS)
    for title, wanted in SPEC_PANELS.items():
        titles = [p["title"] for p in boards[title]["panels"]]
        missing = [w for w in wanted if not any(re.search(w, t, re.IGNORECASE) for t in titles)]
        assert missing == [], f"{title} lacks {missing}"


def test_dashboards_when_read_then_every_query_uses_a_provisioned_datasource() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text()
    )["datasources"]
    uids = {s["uid"]: s["type"] for s in sources}

    for board in _boards().values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), board["title"]
        for panel in board["panels"]:
            assert uids[panel["datasource"]["uid"]] == panel["datasource"]["type"]
            assert panel["targets"], (board["title"], panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids
                assert target["expr"].strip()
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
    assert len({b["uid"] for b in _boards().values()}) == 5


def test_provisioning_when_compose_mounts_it_then_paths_and_services_match() -> None:
    compose = _compose()
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "tradebot.yml").read_text()
    )["providers"][0]
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text()
    )["datasources"]

    assert mounts["./config/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./config/grafana/dashboards"] == provider["options"]["path"]
    for source in sources:
        host = source["url"].split("//")[1].split(":")[0]
        assert host in compose["services"], source["name"]
    assert "INFLUXDB_TOKEN" in grafana["environment"]
