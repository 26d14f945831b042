"""Control panel pages (server-rendered; live updates arrive over the websocket)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.views.generic import TemplateView

from apps.trading.selectors import overview_snapshot


class StaffRequiredMixin(LoginRequiredMixin, UserPassesTestMixin):
    """Anonymous users go to the login page; logged-in non-staff users get a 403."""

    def test_func(self) -> bool:
        return bool(self.request.user.is_staff)


class OverviewView(StaffRequiredMixin, TemplateView):
    """Read-only overview: equity, P&L, positions, orders, decisions, mode and feeds.

    The page renders the initial snapshot into a ``json_script`` element; the
    browser then applies the websocket events of ``apps.panel.consumers`` to it.
    """

    template_name = "panel/overview.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["snapshot"] = overview_snapshot()
        return context
