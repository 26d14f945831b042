"""Control panel pages (server-rendered; live updates arrive over the websocket).

Every page needs an OTP-verified staff user (VerifiedStaffRequiredMixin). Pages only
read (selectors); the controls that change anything are POST views in controls.py.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.views.generic import TemplateView

from apps.accounts.models import Account
from apps.core.access import VerifiedStaffRequiredMixin
from apps.core.realtime import jsonable
from apps.notifications.selectors import alert_list_open
from apps.notifications.services.alerts import alert_payload
from apps.panel.forms import LIMIT_FIELDS, IncidentUpdateForm, KillSwitchForm, RiskLimitForm
from apps.risk.models import Incident
from apps.risk.selectors import incident_list
from apps.risk.services.modes import system_state_get
from apps.trading.selectors import overview_snapshot, risk_overview


def actor_for(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


class OverviewView(VerifiedStaffRequiredMixin, TemplateView):
    """Equity, P&L (total and today's), alerts, positions, orders, decisions, mode, feeds,
    and the controls (pause / resume / observation / kill switch).

    The page renders the initial snapshot into a ``json_script`` element; the
    browser then applies the websocket events of ``apps.panel.consumers`` to it.
    """

    template_name = "panel/overview.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        snapshot = overview_snapshot()
        risk = risk_overview()
        snapshot["daily_pnl_pct"] = risk.get("daily_pnl_pct")
        snapshot["alerts"] = jsonable({"a": [alert_payload(a) for a in alert_list_open()]})["a"]
        context["snapshot"] = snapshot
        context["kill_form"] = KillSwitchForm()
        return context


def _heat(value: Any) -> str:
    """The heat-map class of a correlation in [-1, 1]: ``heat-p0``..``heat-p10`` (red,
    positive) or ``heat-n1``..``heat-n10`` (blue, negative), by tenths (panel.css). A class,
    not an inline style: the Content-Security-Policy allows no inline styles."""
    try:
        v = max(-1.0, min(1.0, float(value)))
    except (TypeError, ValueError):
        return ""
    step = round(abs(v) * 10)
    return f"heat-{'p' if v >= 0 or step == 0 else 'n'}{step}"


class RiskView(VerifiedStaffRequiredMixin, TemplateView):
    """Limits (editable), exposures, VaR, drawdown, today's P&L, correlations (heatmap)."""

    template_name = "panel/risk.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        account = Account.objects.filter(name=settings.ENGINE_ACCOUNT).first()
        risk = risk_overview()
        limits = risk.get("limits") or {}
        ceilings = risk.get("ceilings") or {}
        corr = risk.get("correlation") or {}
        instruments = corr.get("instruments") or []
        matrix = corr.get("matrix") or []
        context.update(
            account=account,
            risk=risk,
            limit_rows=[
                {
                    "name": name,
                    "label": label,
                    "value": limits.get(name),
                    "ceiling": ceilings.get(name),
                }
                for name, label in LIMIT_FIELDS
            ],
            limit_form=kwargs.get("limit_form")
            or (
                RiskLimitForm(
                    initial={
                        "account_id": account.id,
                        **{n: limits.get(n) or "" for n, _ in LIMIT_FIELDS},
                    }
                )
                if account
                else None
            ),
            correlation_rows=[
                {
                    "instrument": name,
                    "cells": [
                        {"value": v, "css": _heat(v)}
                        for v in (matrix[i] if i < len(matrix) else [])
                    ],
                }
                for i, name in enumerate(instruments)
            ],
            correlation_instruments=instruments,
            exposure_by_asset_class=sorted((risk.get("exposure_by_asset_class") or {}).items()),
        )
        return context


class IncidentListView(VerifiedStaffRequiredMixin, TemplateView):
    """KILL reviews: every incident, open first; each links to its report form."""

    template_name = "panel/incidents.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["incidents"] = incident_list()
        context["mode"] = system_state_get().mode
        return context


class IncidentDetailView(VerifiedStaffRequiredMixin, TemplateView):
    """One incident: its report (what happened / cause / action taken) and the close button."""

    template_name = "panel/incident_detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        incident = get_object_or_404(Incident, pk=kwargs["incident_id"])
        context["incident"] = incident
        # Runbook 6.5: an incident opened by reconciliation lists the discrepancies behind it.
        context["discrepancies"] = list(incident.discrepancies.select_related("account"))
        context["form"] = kwargs.get("form") or IncidentUpdateForm(
            initial={
                "what_happened": incident.what_happened,
                "cause": incident.cause,
                "action_taken": incident.action_taken,
            }
        )
        context["mode"] = system_state_get().mode
        return context
