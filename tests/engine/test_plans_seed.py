"""manage.py plans_seed: the dev replay's plans from the ENGINE_* settings, idempotent."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import AuditEvent
from apps.engine.models import TradingPlan
from apps.engine.selectors import plans_active, plans_version
from apps.engine.services import plan_set_active, plan_update
from tests.paths import REPO

pytestmark = pytest.mark.django_db

SAMPLE = REPO / "data" / "sample"


@pytest.fixture
def engine_settings(settings):
    settings.REPLAY_FILES = []
    settings.REPLAY_DATA_DIR = SAMPLE
    settings.ENGINE_ACCOUNT = "paper"
    settings.ENGINE_STRATEGY = "sma_cross"
    settings.ENGINE_STRATEGY_PARAMS = {"fast": "10", "slow": "30"}
    settings.ENGINE_STAKE = Decimal(1000)
    settings.TRADING_BROKER = "paper"
    return settings


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("plans_seed", *args, stdout=out)
    return out.getvalue()


def test_seed_when_sample_data_then_one_plan_per_replay_file_from_the_settings(engine_settings):
    # Act
    out = _seed()

    # Assert: data/sample holds BTC, ETH and LTC-USD one-minute bars
    specs = plans_active()
    assert [(s.account_name, s.venue, s.instrument, s.timeframe) for s in specs] == [
        ("paper", "paper", "BTC-USD", "1m"),
        ("paper", "paper", "ETH-USD", "1m"),
        ("paper", "paper", "LTC-USD", "1m"),
    ]
    assert {(s.strategy, tuple(s.params.items()), s.stake) for s in specs} == {
        ("sma_cross", (("fast", "10"), ("slow", "30")), Decimal(1000))
    }
    assert "3 created, 0 already there" in out
    assert AuditEvent.objects.filter(action="plan.create", actor__startswith="cli:").count() == 3


def test_seed_when_run_again_then_nothing_changes_and_edits_are_kept(engine_settings):
    # Arrange
    _seed()
    plan = TradingPlan.objects.get(instrument__symbol="ETH-USD")
    plan_update(plan=plan, actor="user:ops", stake="5")
    plan_set_active(
        plan=TradingPlan.objects.get(instrument__symbol="LTC-USD"), active=False, actor="user:ops"
    )
    version = plans_version()
    audits = AuditEvent.objects.count()

    # Act
    out = _seed()

    # Assert
    assert "0 created, 3 already there" in out
    assert plans_version() == version
    assert AuditEvent.objects.count() == audits
    assert TradingPlan.objects.get(pk=plan.pk).stake == Decimal(5)
    assert [s.instrument for s in plans_active()] == ["BTC-USD", "ETH-USD"]


def test_seed_when_files_given_then_timeframe_and_instrument_from_their_names(
    engine_settings, tmp_path
):
    # Arrange: only the names matter (the seed reads no rows)
    names = ["SPY_1d.csv", "ETH-BTC_5m_bittrex.csv.gz", "XRP-USD.csv"]
    for name in names:
        (tmp_path / name).write_text("")
    engine_settings.REPLAY_FILES = [str(tmp_path / n) for n in names]

    # Act
    _seed()

    # Assert
    assert sorted((s.instrument, s.timeframe) for s in plans_active()) == [
        ("ETH-BTC", "5m"),
        ("SPY", "1d"),
        ("XRP-USD", "1m"),  # no timeframe in the name: 1m, as run_engine assumes
    ]


def test_seed_when_strategy_is_ml_then_active_model_plan_without_the_sma_defaults(
    engine_settings, tmp_path
):
    # Arrange: ENGINE_STRATEGY=ml with the default sma_cross params left in place
    engine_settings.ENGINE_STRATEGY = "ml"
    (tmp_path / "BTC-USD_1m.csv").write_text("")

    # Act
    _seed("--data", str(tmp_path / "BTC-USD_1m.csv"))

    # Assert
    (spec,) = plans_active()
    assert (spec.strategy, spec.params) == ("ml", {})


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("ENGINE_STRATEGY", "moon", "strategy: unknown strategy 'moon'"),
        ("ENGINE_STRATEGY_PARAMS", {"fast": "10"}, "params: strategy 'sma_cross' needs"),
        ("ENGINE_STAKE", Decimal(0), "stake: stake must be greater than 0"),
    ],
)
def test_seed_when_settings_are_bad_then_command_error_names_the_field(
    engine_settings, setting, value, words
):
    # Arrange
    setattr(engine_settings, setting, value)

    # Act
    with pytest.raises(CommandError) as caught:
        _seed()

    # Assert
    assert words in str(caught.value)
    assert "ENGINE_STRATEGY" in str(caught.value)
    assert not TradingPlan.objects.exists()


def test_seed_when_timeframe_not_a_plan_timeframe_then_refused(engine_settings, tmp_path):
    # Arrange
    (tmp_path / "BTC-USD_3m.csv").write_text("")

    # Act
    with pytest.raises(CommandError) as caught:
        _seed("--data", str(tmp_path / "BTC-USD_3m.csv"))

    # Assert
    assert "BTC-USD_3m.csv" in str(caught.value)
    assert "1m, 5m" in str(caught.value)


def test_seed_when_no_data_then_refused(engine_settings, tmp_path):
    # Arrange
    engine_settings.REPLAY_DATA_DIR = tmp_path

    # Act / Assert
    with pytest.raises(CommandError, match="no replay files"):
        _seed()


def test_seed_help_explains_the_defaults_and_idempotence(capsys):
    # Act
    with pytest.raises(SystemExit):
        call_command("plans_seed", "--help")

    # Assert
    text = " ".join(capsys.readouterr().out.split())
    assert "Idempotent" in text
    assert "ENGINE_STRATEGY with ENGINE_STRATEGY_PARAMS" in text
    assert "--data CSV" in text
