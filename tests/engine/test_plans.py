"""Trading plans: created, edited and (de)activated through the audited services; bad
input is an error naming the field and saves nothing; the engine's selectors see every change."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import Account
from apps.audit.models import AuditEvent
from apps.engine.models import TradingPlan
from apps.engine.selectors import PlanSpec, plans_active, plans_version
from apps.engine.services import plan_create, plan_set_active, plan_update
from apps.marketdata.models import AssetClass, Instrument

pytestmark = pytest.mark.django_db

ACTOR = "user:tester"
SMA = {"fast": "10", "slow": "30"}


def _account(name: str = "paper", broker: str = "paper") -> Account:
    return Account.objects.create(
        name=name,
        broker=broker,
        starting_cash=Decimal(10000),
        cash=Decimal(10000),
        peak_equity=Decimal(10000),
    )


@pytest.fixture
def paper():
    return _account()


@pytest.fixture
def btc():
    return Instrument.objects.create(symbol="BTC-USD", base="BTC", quote="USD")


@pytest.fixture
def aapl():
    return Instrument.objects.create(
        symbol="AAPL", base="AAPL", quote="USD", asset_class=AssetClass.EQUITY
    )


def _create(account, **overrides):
    fields = {
        "venue": "paper",
        "instrument": "BTC-USD",
        "timeframe": "1m",
        "strategy": "sma_cross",
        "params": dict(SMA),
        "stake": Decimal(1000),
    }
    fields.update(overrides)
    return plan_create(account=account, actor=ACTOR, **fields)


def test_create_when_valid_then_saved_audited_and_active(paper, btc):
    # Act
    plan = _create(paper, params={"fast": 5, "slow": "20"}, stake="250.5")

    # Assert
    plan.refresh_from_db()
    assert (plan.account, plan.venue, plan.instrument, plan.timeframe) == (
        paper,
        "paper",
        btc,
        "1m",
    )
    assert plan.params == {"fast": "5", "slow": "20"}  # numbers kept as their text
    assert plan.stake == Decimal("250.5")
    assert plan.active is True
    event = AuditEvent.objects.get(action="plan.create")
    assert (event.actor, event.target) == (ACTOR, f"plan:{plan.pk}")
    assert event.data["instrument"] == "BTC-USD"
    assert event.data["params"] == {"fast": "5", "slow": "20"}
    assert event.data["stake"] == "250.5"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"venue": "binance"}, "venue", "not a valid choice"),
        ({"instrument": "DOGE-USD"}, "instrument", "unknown instrument 'DOGE-USD'"),
        ({"instrument": ""}, "instrument", "required"),
        ({"timeframe": "7m"}, "timeframe", "not a valid choice"),
        ({"strategy": "moon"}, "strategy", "unknown strategy 'moon'"),
        ({"params": {"fast": "10"}}, "params", "needs parameter 'slow'"),
        ({"params": {"fast": "x", "slow": "30"}}, "params", "must be an integer"),
        ({"params": {**SMA, "extra": "1"}}, "params", "unknown parameter 'extra'"),
        ({"params": ["fast", "slow"]}, "params", "JSON object"),
        ({"params": {"fast": None, "slow": "30"}}, "params", "string or a number"),
        ({"strategy": "ml", "params": {"threshold": "2"}}, "params", "probability"),
        ({"strategy": "ml", "params": {"fast": "1"}}, "params", "unknown parameter 'fast'"),
        (
            {"strategy": "ml", "params": {"model": "nope.joblib", "threshold": "0.5"}},
            "params",
            "not found",
        ),
        ({"stake": "0"}, "stake", "greater than 0"),
        ({"stake": "-5"}, "stake", "greater than 0"),
        ({"stake": "lots"}, "stake", "number"),
        ({"stake": "NaN"}, "stake", ""),
        ({"stake": None}, "stake", ""),
    ],
)
def test_create_when_a_field_is_bad_then_error_names_it_and_nothing_saved(
    paper, btc, overrides, field, words
):
    # Act
    with pytest.raises(ValidationError) as caught:
        _create(paper, **overrides)

    # Assert
    errors = caught.value.message_dict
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert not TradingPlan.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="plan.").exists()


def test_create_when_the_strategy_refuses_to_build_then_its_own_message(paper, btc):
    # Act: parses as integers, but SmaCross itself refuses a window of 0
    with pytest.raises(ValidationError) as caught:
        _create(paper, params={"fast": "0", "slow": "10"})

    # Assert
    assert "fast must be a positive integer" in caught.value.message_dict["params"][0]
    assert not TradingPlan.objects.exists()


def test_create_when_ml_on_the_active_model_then_accepted_with_or_without_threshold(paper, btc):
    # Act
    live = _create(paper, strategy="ml", params={})
    tuned = _create(paper, strategy="ml", params={"threshold": "0.6"}, timeframe="5m")

    # Assert
    assert (live.strategy, live.params) == ("ml", {})
    assert tuned.params == {"threshold": "0.6"}


def test_create_when_same_series_and_strategy_twice_then_refused(paper, btc):
    # Arrange
    _create(paper)

    # Act
    with pytest.raises(ValidationError) as caught:
        _create(paper, params={"fast": "5", "slow": "50"})

    # Assert
    assert "already has a plan" in " ".join(caught.value.messages)
    assert TradingPlan.objects.count() == 1


def test_create_when_other_timeframe_or_strategy_then_allowed(paper, btc):
    # Act
    _create(paper)
    _create(paper, timeframe="5m")
    _create(paper, strategy="ml", params={})

    # Assert
    assert TradingPlan.objects.count() == 3


@pytest.mark.parametrize(
    ("broker", "venue", "ok"),
    [
        ("paper", "paper", True),
        ("paper", "kraken", True),  # the simulator on Kraken's live data (staging)
        ("kraken", "kraken", True),
        ("kraken", "paper", False),
        ("kraken", "ibkr", False),
        ("ibkr", "kraken", False),
    ],
)
def test_venue_when_account_broker_differs_then_only_paper_accounts_may(broker, venue, ok, btc):
    # Arrange
    account = _account(name=f"{broker}-acct", broker=broker)

    # Act / Assert
    if ok:
        assert _create(account, venue=venue).venue == venue
    else:
        with pytest.raises(ValidationError) as caught:
            _create(account, venue=venue)
        assert f"trades at {broker}" in caught.value.message_dict["venue"][0]
        assert not TradingPlan.objects.exists()


def test_instrument_when_asset_class_not_traded_at_venue_then_refused(paper, btc, aapl):
    # Act / Assert: Kraken trades crypto only, IBKR equities only
    with pytest.raises(ValidationError) as caught:
        _create(paper, venue="kraken", instrument="AAPL")
    assert "kraken trades crypto only" in caught.value.message_dict["instrument"][0]
    with pytest.raises(ValidationError) as caught:
        _create(paper, venue="ibkr", instrument="BTC-USD")
    assert "ibkr trades equity only" in caught.value.message_dict["instrument"][0]
    assert _create(paper, venue="ibkr", instrument="aapl").instrument == aapl


def test_instrument_when_inactive_then_refused(paper, btc):
    # Arrange
    btc.active = False
    btc.save()

    # Act
    with pytest.raises(ValidationError) as caught:
        _create(paper)

    # Assert
    assert "not active" in caught.value.message_dict["instrument"][0]


def test_update_when_valid_then_saved_and_audited_with_old_and_new(paper, btc):
    # Arrange
    plan = _create(paper)

    # Act
    plan_update(plan=plan, actor="user:other", params={"fast": "5", "slow": "50"}, stake="10")

    # Assert
    plan.refresh_from_db()
    assert plan.params == {"fast": "5", "slow": "50"}
    assert plan.stake == Decimal(10)
    event = AuditEvent.objects.get(action="plan.update")
    assert event.actor == "user:other"
    assert event.data["changed"]["params"] == {"old": SMA, "new": {"fast": "5", "slow": "50"}}
    assert event.data["changed"]["stake"]["new"] == "10"
    assert set(event.data["changed"]) == {"params", "stake"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"strategy": "moon"}, "strategy"),
        ({"timeframe": "2h"}, "timeframe"),
        ({"venue": "nyse"}, "venue"),
        ({"instrument": "XYZ-USD"}, "instrument"),
        ({"params": {"fast": "10"}}, "params"),
        ({"stake": "0"}, "stake"),
        ({"account": "other"}, "account"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_update_when_a_field_is_bad_then_error_names_it_and_nothing_changed(
    paper, btc, fields, field
):
    # Arrange
    plan = _create(paper)
    before = plans_version()

    # Act
    with pytest.raises(ValidationError) as caught:
        plan_update(plan=plan, actor=ACTOR, **fields)

    # Assert
    assert field in caught.value.message_dict
    fresh = TradingPlan.objects.get(pk=plan.pk)
    assert (fresh.strategy, fresh.timeframe, fresh.venue, fresh.params, fresh.stake) == (
        "sma_cross",
        "1m",
        "paper",
        SMA,
        Decimal(1000),
    )
    assert plans_version() == before
    assert not AuditEvent.objects.filter(action="plan.update").exists()


def test_update_when_nothing_changes_then_nothing_written(paper, btc):
    # Arrange
    plan = _create(paper)
    before = plans_version()

    # Act
    plan_update(plan=plan, actor=ACTOR, params={"fast": 10, "slow": 30}, stake="1000.00")

    # Assert
    assert plans_version() == before
    assert not AuditEvent.objects.filter(action="plan.update").exists()


def test_set_active_then_audited_and_selectors_follow(paper, btc):
    # Arrange
    plan = _create(paper)

    # Act
    plan_set_active(plan=plan, active=False, actor=ACTOR)
    inactive = plans_active()
    plan_set_active(plan=plan, active=False, actor=ACTOR)  # already off: nothing written
    plan_set_active(plan=plan, active=True, actor=ACTOR)

    # Assert
    assert inactive == []
    actions = list(
        AuditEvent.objects.filter(target=f"plan:{plan.pk}")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["plan.create", "plan.deactivate", "plan.activate"]
    assert [p.id for p in plans_active()] == [plan.pk]


def test_set_active_when_plan_no_longer_valid_then_activation_refused(paper, btc):
    # Arrange: a plan whose instrument was retired while it was off
    plan = _create(paper)
    plan_set_active(plan=plan, active=False, actor=ACTOR)
    Instrument.objects.filter(pk=btc.pk).update(active=False)

    # Act
    with pytest.raises(ValidationError) as caught:
        plan_set_active(plan=plan, active=True, actor=ACTOR)

    # Assert
    assert "instrument" in caught.value.message_dict
    assert TradingPlan.objects.get(pk=plan.pk).active is False


def test_plans_active_returns_plain_specs_of_active_plans_only(paper, btc):
    # Arrange
    on = _create(paper, stake="12.5")
    off = _create(paper, timeframe="5m")
    plan_set_active(plan=off, active=False, actor=ACTOR)
    _create(_account("other"), strategy="ml", params={"threshold": "0.7"}, timeframe="1h")

    # Act
    specs = plans_active()

    # Assert
    assert specs[0] == PlanSpec(
        id=on.pk,
        account_id=paper.pk,
        account_name="paper",
        venue="paper",
        instrument="BTC-USD",
        timeframe="1m",
        strategy="sma_cross",
        params=SMA,
        stake=Decimal("12.5"),
        created_at=on.created_at,
    )
    assert [(s.account_name, s.strategy, s.params) for s in specs[1:]] == [
        ("other", "ml", {"threshold": "0.7"})
    ]
    with pytest.raises(AttributeError):
        specs[0].stake = Decimal(1)  # type: ignore[misc]


def test_plans_version_changes_on_every_change(paper, btc):
    # Arrange
    seen = [plans_version()]

    # Act / Assert: create, edit, deactivate, activate, another create, a delete
    plan = _create(paper)
    seen.append(plans_version())
    plan_update(plan=plan, actor=ACTOR, stake="5")
    seen.append(plans_version())
    plan_set_active(plan=plan, active=False, actor=ACTOR)
    seen.append(plans_version())
    plan_set_active(plan=plan, active=True, actor=ACTOR)
    seen.append(plans_version())
    other = _create(paper, timeframe="5m")
    seen.append(plans_version())
    TradingPlan.objects.filter(pk=other.pk).delete()
    seen.append(plans_version())
    assert all(a != b for a, b in zip(seen, seen[1:], strict=False)), seen
    assert len(set(seen[:-1])) == len(seen) - 1, seen  # the delete restores seen[4]'s rows
    assert plans_version() == seen[-1]  # stable while nothing changes


def test_plans_version_when_an_older_timestamp_commits_late_then_still_changes(paper, btc):
    # Arrange: a row whose updated_at moves BACK (a transaction stamped earlier, committed
    # later): a max(updated_at) version would not see it.
    plan = _create(paper)
    other = _create(paper, timeframe="5m")
    before = plans_version()
    earlier = TradingPlan.objects.get(pk=plan.pk).updated_at.replace(microsecond=0)

    # Act
    TradingPlan.objects.filter(pk=plan.pk).update(stake=Decimal(7), updated_at=earlier)

    # Assert
    assert other.updated_at > earlier
    assert plans_version() != before
