"""The MCP servers in-process, with the SDK's own Client (no port): what an agent can and
cannot do, and that every order goes through the engine's decision path."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from mcp import Client

from apps.audit.models import AuditEvent, DecisionLog
from apps.mcp.models import McpTicket
from apps.mcp.services import mcp_agent_revoke
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.models import Order
from tests.mcp.conftest import call, error_text, in_process, leaves, make_agent, text_of

pytestmark = pytest.mark.django_db

BUY = {"instrument": "BTC-USD", "side": "buy", "quantity": "1"}


def tool_audits(tool: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="mcp.tool_call", target=tool).order_by("id"))


def nothing_created() -> None:
    assert Order.objects.count() == 0
    assert DecisionLog.objects.count() == 0
    assert McpTicket.objects.count() == 0


def preview(agent: Any, **override: Any) -> dict[str, Any]:
    result = call("trading", agent, "order_preview", {**BUY, **override})
    assert not result.is_error, text_of(result)
    return result.structured_content


def confirm(agent: Any, token: str) -> Any:
    return call("trading", agent, "order_confirm", {"confirmation_token": token})


# --- tools offered ---------------------------------------------------------------------------


def test_market_data_registers_read_tools_only_and_trading_no_resume_limits_or_plans(
    market,
) -> None:
    agent, _ = make_agent(market)

    async def tools(client: Client) -> list[Any]:
        return (await client.list_tools()).tools

    md = in_process("market-data", agent, tools)
    assert {t.name for t in md} == {
        "instruments", "bars", "bars_latest", "feeds", "system_mode", "positions", "ml_latest",
        "decisions",
    }  # fmt: skip
    assert all(t.annotations and t.annotations.read_only_hint for t in md)
    assert all(t.output_schema for t in md)  # structured content

    trading = {t.name for t in in_process("trading", agent, tools)}
    assert trading == {
        "order_preview", "order_confirm", "order_cancel", "orders_open", "positions", "mode_request_pause",
        "kill_switch",
    }  # fmt: skip
    assert not any(word in name for name in trading for word in ("resume", "limit", "plan"))


def test_agent_calling_resume_gets_unknown_tool_error_audited_and_mode_unchanged(market) -> None:
    agent, _ = make_agent(market)

    result = call("trading", agent, "mode_resume", {"reason": "go"})

    assert result.is_error
    assert "Unknown tool: mode_resume" in text_of(result)
    assert system_mode_get() is SystemMode.NORMAL
    [event] = tool_audits("mode_resume")
    assert event.actor == "mcp:bot"
    assert event.data["verdict"] == "error"
    assert event.data["arguments"] == {"reason": "go"}


# --- market data --------------------------------------------------------------------------------


def test_bars_are_paged_oldest_first_and_audited(market) -> None:
    agent, _ = make_agent(market)

    first = call("market-data", agent, "bars", {"instrument": "BTC-USD", "limit": 3})
    page = first.structured_content
    assert len(page["bars"]) == 3
    assert page["bars"][0]["ts"] < page["bars"][-1]["ts"]
    assert page["next_before"] == page["bars"][0]["ts"]

    rest = call(
        "market-data",
        agent,
        "bars",
        {"instrument": "BTC-USD", "limit": 3, "before": page["next_before"]},
    ).structured_content
    assert len(rest["bars"]) == 2  # 5 bars in all
    assert rest["next_before"] is None
    assert [e.data["verdict"] for e in tool_audits("bars")] == ["ok", "ok"]

    latest = call("market-data", agent, "bars_latest", {"instrument": "BTC-USD"}).structured_content
    assert latest["bars"][0]["ts"] == page["bars"][-1]["ts"]
    assert latest["bars"][0]["close"] == "100.000000000000"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"instrument": "NOPE-USD"}, "instrument"),
        ({"instrument": "BTC-USD", "limit": 501}, "limit"),
        ({"instrument": "BTC-USD", "limit": 0}, "limit"),
        ({"instrument": "BTC-USD", "timeframe": "7s"}, "timeframe"),
        ({"instrument": "BTC-USD", "before": "yesterday"}, "before"),
    ],
)
def test_bad_bars_request_is_a_tool_error_naming_the_field_and_audited(
    market, args: dict[str, Any], field: str
) -> None:
    agent, _ = make_agent(market)

    result = call("market-data", agent, "bars", args)

    assert result.is_error
    assert error_text(result).startswith(f"{field}:")
    assert "Traceback" not in text_of(result)
    [event] = tool_audits("bars")
    assert event.data["verdict"] == "error"
    assert event.data["detail"].startswith(f"{field}:")


def test_instruments_mode_positions_and_decisions_read(market) -> None:
    agent, _ = make_agent(market)

    [inst] = call("market-data", agent, "instruments").structured_content["result"]
    assert inst["symbol"] == "BTC-USD"
    assert call("market-data", agent, "system_mode").structured_content["result"] == "normal"
    positions = call("market-data", agent, "positions").structured_content
    assert positions["account"] == "paper"
    assert positions["positions"] == []
    assert call("market-data", agent, "decisions").structured_content["result"] == []
    ml = call("market-data", agent, "ml_latest", {"instrument": "BTC-USD"}).structured_content
    assert ml == {"instrument": "BTC-USD", "prediction": None, "calibration": None}


def test_agent_without_the_scope_is_refused_and_audited(market) -> None:
    agent, _ = make_agent(market, scopes=["orders:preview"])

    result = call("market-data", agent, "bars", {"instrument": "BTC-USD"})

    assert result.is_error
    assert "scope:" in text_of(result)
    assert "market:read" in text_of(result)
    assert tool_audits("bars")[0].data["verdict"] == "refused"


def test_revoked_agent_is_refused(market) -> None:
    agent, _ = make_agent(market)
    mcp_agent_revoke(name="bot", actor="test")

    result = call("market-data", agent, "system_mode")

    assert result.is_error
    assert "revoked" in text_of(result)
    [event] = tool_audits("system_mode")
    assert event.actor == "mcp:bot"
    assert event.data["verdict"] == "refused"


# --- preview ------------------------------------------------------------------------------------


def test_preview_that_breaks_the_account_limit_is_denied_with_every_check_and_creates_nothing(
    market,
) -> None:
    agent, _ = make_agent(market)

    result = preview(agent, quantity="60")  # 60 * 100 = 6000 > the account's 5000

    assert result["verdict"] == "denied"
    assert result["confirmation_token"] is None
    names = [c["name"] for c in result["checks"]]
    assert names[:3] == ["mode_gate", "max_order_notional", "max_position"]
    assert "agent_order_rate" in names
    notional = next(c for c in result["checks"] if c["name"] == "max_order_notional")
    assert notional["passed"] is False
    assert Decimal(notional["values"]["notional"]) == Decimal(6000)
    assert Decimal(notional["values"]["limit"]) == Decimal(5000)
    assert "max_order_notional" in result["reason"]
    nothing_created()
    assert tool_audits("order_preview")[0].data["verdict"] == "denied"


def test_preview_over_the_agents_own_limit_is_denied_though_the_account_allows_it(market) -> None:
    agent, _ = make_agent(market, max_order_notional=Decimal(50))

    result = preview(agent)  # 100 <= 5000 (account) but > 50 (agent)

    assert result["verdict"] == "denied"
    failed = [c["name"] for c in result["checks"] if not c["passed"]]
    assert failed == ["agent_max_order_notional"]
    nothing_created()


def test_preview_of_an_instrument_outside_the_agents_list_is_denied(market) -> None:
    from tests.mcp.conftest import fresh_bars

    fresh_bars("ETH-USD")
    agent, _ = make_agent(market, instruments=["BTC-USD"])

    result = preview(agent, instrument="ETH-USD")

    assert result["verdict"] == "denied"
    assert [c["name"] for c in result["checks"] if not c["passed"]] == ["agent_instruments"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"instrument": "NOPE-USD"}, "instrument"),
        ({"instrument": "X" * 10_000}, "instrument"),
        ({"quantity": "nan"}, "quantity"),
        ({"quantity": "Infinity"}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": "1e40"}, "quantity"),
        ({"quantity": "one"}, "quantity"),
        ({"side": "short"}, "side"),
    ],
)
def test_bad_order_input_is_a_tool_error_naming_the_field_audited_nothing_created(
    market, override: dict[str, Any], field: str
) -> None:
    agent, _ = make_agent(market)

    result = call("trading", agent, "order_preview", {**BUY, **override})

    assert result.is_error
    assert error_text(result).startswith(f"{field}:"), text_of(result)
    nothing_created()
    [event] = tool_audits("order_preview")
    assert event.data["verdict"] == "error"


def test_missing_argument_is_a_tool_error_naming_it(market) -> None:
    agent, _ = make_agent(market)

    result = call("trading", agent, "order_preview", {"instrument": "BTC-USD", "side": "buy"})

    assert result.is_error
    assert "quantity" in text_of(result)
    nothing_created()
    assert tool_audits("order_preview")[0].data["verdict"] == "error"


# --- confirm ------------------------------------------------------------------------------------


def test_preview_then_confirm_makes_one_order_through_the_decision_path(market) -> None:
    agent, _ = make_agent(market)
    token = preview(agent)["confirmation_token"]
    assert token
    assert Order.objects.count() == 0  # the preview placed nothing

    result = confirm(agent, token)

    assert not result.is_error, text_of(result)
    body = result.structured_content
    assert body["verdict"] == "sent"
    order = Order.objects.get()
    assert body["client_order_id"] == order.client_order_id
    assert order.quantity == Decimal(1)
    assert order.side == "buy"
    assert order.status == "initialized"  # the execution queue sends it on commit
    decision = DecisionLog.objects.get()
    assert decision.source == "mcp:bot"
    assert decision.order_ids == [order.client_order_id]
    assert decision.check_result == "passed"
    assert decision.strategy == "mcp"


def test_confirming_the_same_token_again_or_after_a_lost_response_never_sends_a_second_order(
    market,
) -> None:
    agent, _ = make_agent(market)
    token = preview(agent)["confirmation_token"]

    async def confirm_and_lose_the_answer(client: Client) -> None:
        # The client gives up before reading the answer (a transport failure)...
        await client.call_tool("order_confirm", {"confirmation_token": token})
        raise ConnectionResetError("the answer was lost")

    with pytest.raises(BaseExceptionGroup) as lost:  # the client's task group wraps it
        in_process("trading", agent, confirm_and_lose_the_answer)
    assert [type(e) for e in leaves(lost.value)] == [ConnectionResetError]
    first = Order.objects.get()

    # ...and retries, twice.
    again = confirm(agent, token).structured_content
    third = confirm(agent, token).structured_content

    assert again["verdict"] == third["verdict"] == "already_confirmed"
    assert again["client_order_id"] == third["client_order_id"] == first.client_order_id
    assert Order.objects.count() == 1
    assert DecisionLog.objects.count() == 1


def test_confirm_after_the_ttl_is_refused(market, settings) -> None:
    settings.MCP_TICKET_TTL_SECONDS = 7
    agent, _ = make_agent(market)
    token = preview(agent)["confirmation_token"]
    ticket = McpTicket.objects.get()
    assert (ticket.expires_at - ticket.created_at).total_seconds() == pytest.approx(7, abs=0.5)
    McpTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    result = confirm(agent, token)

    assert result.is_error
    assert error_text(result).startswith("confirmation_token: expired")
    assert Order.objects.count() == 0


def test_confirm_with_another_agents_token_is_refused(market) -> None:
    alice, _ = make_agent(market, name="alice")
    mallory, _ = make_agent(market, name="mallory")
    token = preview(alice)["confirmation_token"]

    result = confirm(mallory, token)

    assert result.is_error
    assert error_text(result).startswith("confirmation_token: unknown, or issued to another agent")
    assert Order.objects.count() == 0
    # alice's token still works once
    assert confirm(alice, token).structured_content["verdict"] == "sent"


def test_agent_without_orders_submit_can_preview_but_not_confirm(market) -> None:
    agent, _ = make_agent(market, scopes=["market:read", "orders:preview"])
    token = preview(agent)["confirmation_token"]

    result = confirm(agent, token)

    assert result.is_error
    assert "orders:submit" in text_of(result)
    assert Order.objects.count() == 0


@pytest.mark.parametrize("mode", ["pause", "kill"])
def test_order_previewed_before_pause_or_kill_is_refused_at_confirm(market, mode: str) -> None:
    agent, _ = make_agent(market)
    token = preview(agent)["confirmation_token"]
    if mode == "pause":
        system_mode_set(mode=SystemMode.PAUSE, actor="ops", source="cli", reason="test")
    else:
        from apps.trading.services.kill_switch import kill_switch_engage

        kill_switch_engage(actor="ops", source="cli", reason="test")

    body = confirm(agent, token).structured_content

    assert body["verdict"] == "denied"
    assert "mode_gate" in body["reason"]
    assert not Order.objects.exclude(status="denied").exists()  # nothing left to send
    decision = DecisionLog.objects.get(source="mcp:bot")
    assert decision.failed_checks[0] == "mode_gate"


def test_preview_in_pause_is_denied_by_the_mode_gate(market) -> None:
    agent, _ = make_agent(market)
    system_mode_set(mode=SystemMode.PAUSE, actor="ops", source="cli", reason="test")

    result = preview(agent)

    assert result["verdict"] == "denied"
    assert [c["name"] for c in result["checks"] if not c["passed"]] == ["mode_gate"]


def test_agent_order_rate_limit_applies_at_confirm(market) -> None:
    from tests.mcp.conftest import fresh_bars

    fresh_bars("ETH-USD")
    agent, _ = make_agent(market, max_orders_per_minute=1)
    first = preview(agent)["confirmation_token"]
    second = preview(agent, instrument="ETH-USD")["confirmation_token"]
    assert confirm(agent, first).structured_content["verdict"] == "sent"

    body = confirm(agent, second).structured_content

    assert body["verdict"] == "denied"
    assert "agent_order_rate" in body["reason"]
    assert Order.objects.count() == 1


# --- controls -------------------------------------------------------------------------------------


def test_agent_can_pause_but_the_change_is_its_own_and_audited(market) -> None:
    agent, _ = make_agent(market)

    result = call("trading", agent, "mode_request_pause", {"reason": "volatility"})

    assert result.structured_content["result"] == "pause"
    assert system_mode_get() is SystemMode.PAUSE
    assert AuditEvent.objects.filter(actor="mcp:bot", action="mcp.tool_call").count() == 1


def test_agent_can_engage_the_kill_switch(market) -> None:
    agent, _ = make_agent(market)

    result = call("trading", agent, "kill_switch", {"reason": "runaway"})

    assert not result.is_error, text_of(result)
    assert result.structured_content["mode"] == "kill"
    assert system_mode_get() is SystemMode.KILL
    # and cannot leave it: asking for PAUSE from KILL is refused by the mode machine
    refused = call("trading", agent, "mode_request_pause", {"reason": "undo"})
    assert refused.is_error
    assert system_mode_get() is SystemMode.KILL


def test_paper_only_agent_on_a_live_account_is_denied(market) -> None:
    from apps.accounts.models import Broker

    market.broker = Broker.KRAKEN
    market.save(update_fields=["broker"])
    agent, _ = make_agent(market)

    result = preview(agent)

    assert result["verdict"] == "denied"
    assert "agent_paper_only" in result["reason"]


def test_agent_cancels_its_own_open_order_and_no_one_elses(market) -> None:
    agent, _ = make_agent(market)
    other, _ = make_agent(market, name="other")
    token = preview(agent)["confirmation_token"]
    sent = confirm(agent, token).structured_content
    open_orders = call("trading", agent, "orders_open").structured_content["result"]
    assert [o["client_order_id"] for o in open_orders] == [sent["client_order_id"]]

    refused = call("trading", other, "order_cancel", {"client_order_id": sent["client_order_id"]})
    assert refused.is_error
    assert error_text(refused).startswith("client_order_id:")
    assert Order.objects.get().status == "initialized"

    result = call("trading", agent, "order_cancel", {"client_order_id": sent["client_order_id"]})

    assert result.structured_content["verdict"] == "cancelled"
    assert Order.objects.get().status == "denied"  # never sent: denied, as the kill switch does
    assert call("trading", agent, "orders_open").structured_content["result"] == []
    again = call("trading", agent, "order_cancel", {"client_order_id": sent["client_order_id"]})
    assert again.is_error
    assert "not open" in error_text(again)


def test_calls_denials_and_latency_are_counted_per_tool_and_agent(market) -> None:
    from apps.mcp.metrics import REGISTRY

    agent, _ = make_agent(market, name="metered")

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    denied = {"server": "trading", "tool": "order_preview", "agent": "metered"}
    before = value("mcp_denials_total", **denied, reason="max_order_notional")
    preview(agent, quantity="60")
    call("trading", agent, "no_such_tool")
    preview(agent)

    assert value("mcp_denials_total", **denied, reason="max_order_notional") == before + 1
    assert value("mcp_tool_calls_total", **denied, verdict="approved") == 1
    assert value("mcp_tool_calls_total", **denied, verdict="denied") == 1
    unknown = {"server": "trading", "tool": "unknown", "agent": "metered"}
    assert value("mcp_tool_calls_total", **unknown, verdict="error") == 1
    assert value("mcp_denials_total", **unknown, reason="bad_input") == 1
    assert value("mcp_tool_latency_seconds_count", **denied) == 2


# --- resources and the other reads -------------------------------------------------------------


def test_instrument_resources_are_read_as_the_agent_and_audited(market) -> None:
    import json

    from mcp.shared.exceptions import MCPError

    agent, _ = make_agent(market)

    async def read(client: Client) -> tuple[list[str], list[str], Any]:
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        templates = [
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        ]
        one = await client.read_resource("tradebot://instruments/BTC-USD")
        return listed, templates, one

    listed, templates, one = in_process("market-data", agent, read)

    assert listed == ["tradebot://instruments"]
    assert templates == ["tradebot://instruments/{symbol}"]
    body = json.loads(one.contents[0].text)
    assert body["symbol"] == "BTC-USD"
    assert body["latest_bar_1m"]["close"] == "100.000000000000"
    event = AuditEvent.objects.get(action="mcp.tool_call")
    assert event.target == "resource:tradebot://instruments/BTC-USD"
    assert event.data["verdict"] == "ok"

    async def unknown(client: Client) -> Any:
        return await client.read_resource("tradebot://instruments/NOPE-USD")

    with pytest.raises(BaseExceptionGroup) as raised:  # the client's task group wraps it
        in_process("market-data", agent, unknown)
    [error] = leaves(raised.value)
    assert isinstance(error, MCPError)
    assert str(error).startswith("instrument: unknown instrument 'NOPE-USD'")
    assert AuditEvent.objects.filter(data__verdict="error").count() == 1


def test_feeds_positions_and_decisions_show_what_happened(market) -> None:
    from apps.marketdata.models import FeedStatus

    FeedStatus.objects.create(
        feed="kraken-ws", last_update=timezone.now() - timedelta(seconds=30), bars_accepted=7
    )
    agent, _ = make_agent(market)
    confirm(agent, preview(agent)["confirmation_token"])

    [feed] = call("market-data", agent, "feeds").structured_content["result"]
    assert feed["feed"] == "kraken-ws"
    assert feed["bars_accepted"] == 7
    assert 29 <= feed["age_seconds"] < 60

    mine = call("market-data", agent, "decisions", {"source": "mcp:bot"}).structured_content
    [decision] = mine["result"]
    assert decision["source"] == "mcp:bot"
    assert decision["action"] == "buy"
    assert {c["name"] for c in decision["checks"]} >= {"mode_gate", "max_order_notional"}
    engine = call("market-data", agent, "decisions", {"source": "engine"}).structured_content
    assert engine["result"] == []
    too_many = call("market-data", agent, "decisions", {"limit": 101})
    assert error_text(too_many).startswith("limit:")


def test_confirm_while_observing_records_would_buy_and_sends_nothing(market) -> None:
    agent, _ = make_agent(market)
    token = preview(agent)["confirmation_token"]
    system_mode_set(mode=SystemMode.OBSERVATION, actor="ops", source="cli", reason="test")

    body = confirm(agent, token).structured_content

    assert body["verdict"] == "observation"
    assert body["client_order_id"] is None
    assert Order.objects.count() == 0
    assert DecisionLog.objects.get(source="mcp:bot").action == "would_buy"


@pytest.mark.django_db(transaction=True)
def test_http_app_behind_a_proxy_accepts_the_public_host_and_still_refuses_others(market) -> None:
    from asgiref.sync import SyncToAsync
    from django.db import connections
    from starlette.testclient import TestClient

    from apps.mcp.server import build_server, http_app

    _, token = make_agent(market)
    public = "https://mcp.example/trading/mcp"
    app = http_app(build_server("trading", public_url=public), host="127.0.0.1", public_url=public)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    with TestClient(app, base_url="http://mcp.example") as client:
        ok = client.post("/mcp", json=ping, headers=headers)
        assert ok.status_code == 200, ok.text
        bad = client.post("/mcp", json=ping, headers={**headers, "Host": "evil.example"})
        assert bad.status_code == 421
    # The token check ran in asgiref's one sync thread: close its connection (test DB teardown).
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


def test_ml_latest_gives_the_newest_probability_and_its_models_calibration(market) -> None:
    from apps.ml.models import CalibrationSnapshot, ModelVersion, Prediction

    t0 = timezone.now() - timedelta(days=30)
    mv = ModelVersion.objects.create(
        version="v7", created_by="test", algorithm="logreg", instrument="BTC-USD",
        train_start=t0, train_end=t0, heldout_start=t0, heldout_end=t0,
        data_path="d.csv", data_sha256="0" * 64, file_path="m.joblib", file_sha256="0" * 64,
    )  # fmt: skip
    for minutes, p in ((1, 0.41), (2, 0.73)):
        Prediction.objects.create(
            model_version=mv, instrument="BTC-USD", bar_ts=t0 + timedelta(minutes=minutes),
            horizon=30, probability=p, features=[], features_hash="x",
        )  # fmt: skip
    CalibrationSnapshot.objects.create(
        model_version=mv, n=500, n_bins=10, ece=0.031, brier=0.2, level="ok"
    )
    agent, _ = make_agent(market)

    body = call("market-data", agent, "ml_latest", {"instrument": "BTC-USD"}).structured_content

    assert body["prediction"]["probability"] == 0.73
    assert body["prediction"]["model_version"] == "v7"
    assert body["calibration"]["ece"] == 0.031
    assert body["calibration"]["level"] == "ok"


def test_positions_show_quantity_and_pnl_of_the_agents_account(market) -> None:
    from apps.model.orders import Fill as FillValue
    from apps.model.values import Side
    from apps.trading.services.fills import fill_apply
    from tests.trading.factories import T0, accepted_order, instrument

    order = accepted_order(market, instrument(), quantity="3")
    fill_apply(
        fill=FillValue(
            trade_id="t1", client_order_id=order.client_order_id, instrument="BTC-USD",
            side=Side.BUY, quantity=Decimal(3), price=Decimal(100), fee=Decimal(0), ts=T0,
        )
    )  # fmt: skip
    agent, _ = make_agent(market)

    body = call("trading", agent, "positions").structured_content

    [position] = body["positions"]
    assert position["instrument"] == "BTC-USD"
    assert Decimal(position["quantity"]) == 3
    assert Decimal(position["avg_price"]) == 100
    assert "realized_pnl" in body
    # already long: a second buy is a hold, as the engine would decide
    again = preview(agent)
    assert again["verdict"] == "hold"
    assert again["reason"].startswith("already long")
    # the sell must exit the whole position
    partial = call("trading", agent, "order_preview", {**BUY, "side": "sell", "quantity": "1"})
    assert error_text(partial).startswith("quantity: a sell exits the whole long position")
    exit_all = preview(agent, side="sell", quantity="3")
    assert exit_all["verdict"] == "approved"
    sent = confirm(agent, exit_all["confirmation_token"]).structured_content
    assert sent["verdict"] == "sent"
    sell = Order.objects.get(client_order_id=sent["client_order_id"])
    assert (sell.side, sell.quantity, sell.reduce_only) == ("sell", Decimal(3), True)


def test_an_order_denied_at_confirm_does_not_count_toward_the_agents_rate(market) -> None:
    from tests.mcp.conftest import fresh_bars

    fresh_bars("ETH-USD")
    agent, _ = make_agent(market, max_orders_per_minute=1)
    first = preview(agent)["confirmation_token"]
    second = preview(agent, instrument="ETH-USD")["confirmation_token"]
    system_mode_set(mode=SystemMode.PAUSE, actor="ops", source="cli", reason="test")
    assert confirm(agent, first).structured_content["verdict"] == "denied"
    system_mode_set(mode=SystemMode.NORMAL, actor="ops", source="cli", reason="test")

    assert confirm(agent, second).structured_content["verdict"] == "sent"
