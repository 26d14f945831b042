"""Account lives in apps.accounts on its original table, and every account FK points at it."""

from __future__ import annotations

import pytest
from django.apps import apps as django_apps
from django.contrib.contenttypes.models import ContentType

from apps.accounts.models import Account

pytestmark = pytest.mark.django_db


def test_account_when_moved_then_same_table_and_accounts_label():
    assert Account._meta.app_label == "accounts"
    assert Account._meta.db_table == "trading_account"
    assert ContentType.objects.get_for_model(Account).app_label == "accounts"


def test_account_fks_when_listed_then_all_point_at_accounts_account():
    pointing = {
        f"{model._meta.label}.{field.name}"
        for model in django_apps.get_models()
        for field in model._meta.get_fields()
        if field.is_relation and field.concrete and field.related_model is Account
    }
    assert pointing == {
        "brokers.BrokerSession.account",
        "brokers.ReconciliationRun.account",
        "brokers.Discrepancy.account",
        "trading.PaperAccount.account",
        "credentials.BrokerCredential.account",
        "engine.TradingPlan.account",
        "mcp.McpAgent.account",
        "risk.RiskLimit.account",
        "risk.EquityMonitor.account",
        "risk.HypotheticalTrade.account",
        "trading.Order.account",
        "trading.Fill.account",
        "trading.Position.account",
        "trading.EquitySnapshot.account",
    }
